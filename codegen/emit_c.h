/* emit_c.h: lowering of an IR graph to a C99 source file and its header.
 *
 * cg_emit_c() turns a graph into two texts: NAME.h, the documented API
 * (create / forward / forward_v / last_error / destroy, the workspace size, the
 * parameter table), and NAME.c, which includes NAME.h and holds the kernels the
 * graph needs (pasted from runtime/snippets/kernels.c), the safetensors loader
 * (runtime/snippets/safetensors_load.c) and the forward pass as straight-line
 * kernel calls, each under a comment that points back at the DSL. See the
 * design paragraph of emit_c.c for what the generated code looks like.
 *
 * The snippet helpers below are codegen-internal (defined in snippet.c). */
#ifndef NNC_CODEGEN_EMIT_C_H
#define NNC_CODEGEN_EMIT_C_H

#include "../ir/ir.h"
#include "cnames.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct CgOptions {
    int max_batch;            /* largest n a forward call accepts (>= 1) */
    const char *header_name;  /* file name of the header as the .c #includes it ("lenet5.h") */
    const char *source_path;  /* the .net file, for the banner (NULL: the graph's source) */
    bool no_memory_plan;      /* -O0/-O1: every buffer its own region, nothing in place (easier to debug);
                               * the graph's plan (g->plan, passes/plan_memory.h) must be the one for
                               * this and max_batch: cg_emit_c does not plan */
    bool profile;             /* nnc bench --profile: PREFIX_set_profile_hook, a hook called in the run
                               * function before the first layer (node -1) and after each (its node) */
} CgOptions;

/* Emits the C source into c_src and the header into h_src (both appended to),
 * from g and its memory plan (the pipeline's last pass).
 * Returns false with a sentence in err when the graph cannot be lowered (an
 * unsupported attribute, a size beyond what the generated code can address). */
bool cg_emit_c(const IrGraph *g, const CgOptions *opt, StrBuf *c_src, StrBuf *h_src, char *err, size_t errlen);

/* The runtime/snippets/ files embedded in nnc as strings (CMakeLists.txt
 * NNC_SNIPPETS, cmake/embed.cmake: their #includes expanded), NAME and NAME_len. */
#define NNC_SNIPPET_DECLARE(name) extern const char nnc_snippet_##name[]; extern const size_t nnc_snippet_##name##_len;
NNC_SNIPPET_DECLARE(kernels)
NNC_SNIPPET_DECLARE(grad_kernels)
NNC_SNIPPET_DECLARE(optim)
NNC_SNIPPET_DECLARE(safetensors_load)
NNC_SNIPPET_DECLARE(module_infer)
NNC_SNIPPET_DECLARE(module_train)
#undef NNC_SNIPPET_DECLARE

/* ---- snippet.c: the kernel sections of runtime/snippets/kernels.c ----
 *
 * kernels.c is a sequence of sections, each opened by a marker line
 *     / * @kernel NAME * /   or   / * @kernel NAME needs: DEP1 DEP2 * /
 * (the first one is "prologue"). cg_snippet_select() appends to out the
 * prologue, the named sections and everything they need, transitively, in
 * file order; text before the first marker is the file's own preamble and is
 * left out. Returns false with err naming the section when a name or a
 * dependency has no section. */
bool cg_snippet_select(const char *text, size_t len, const char *const *names, int n_names, StrBuf *out,
                       char *err, size_t errlen);

/* The kernel library: the sections of runtime/snippets/kernels.c (the files it
 * includes, activations.h first in the prologue) then of grad_kernels.c (its
 * files), as one sectioned text, appended to out. cg_kernel_select() is
 * cg_snippet_select() on that text. */
void cg_kernel_library(StrBuf *out);
bool cg_kernel_select(const char *const *names, int n_names, StrBuf *out, char *err, size_t errlen);

#endif
