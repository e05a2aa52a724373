/* dialect_c.c: C99 for the host CPU, the first dialect of the generator
 * (cgen.h CgDialect). Kernels are static functions pasted from the kernel
 * library (runtime/snippets/), called directly; calls are synchronous; the
 * workspace is one byte array addressed by offset.
 *
 * A second dialect (CUDA) fills the same table: its kernel_prefix names
 * device kernels (or their host-side launchers), library pastes the device
 * kernel library, region addresses device memory, zero is cudaMemsetAsync,
 * launch_open writes "nnc_cu_conv2d<<<grid, block, 0, stream>>>(" with the
 * launch configuration, and sync a stream synchronization; the walk
 * (ops_c.c, grad_c.c) and the modules stay as they are. */
#include "cgen.h"
#include "emit_c.h"

#include <string.h>

/* The kernel library (runtime/snippets/kernels*.c, grad_kernels*.c, as one
 * sectioned text: the backward sections need forward ones; snippet.c). */
static bool c_library(const char *const *sections, int n, StrBuf *out, char *err, size_t errlen)
{
    return cg_kernel_select(sections, n, out, err, errlen);
}

static const char *c_region(Arena *a, const char *ws, long long off)
{
    return arena_printf(a, "(float *)(%s + %lld)", ws, off);
}

static const char *c_zero(Arena *a, const char *p, const char *count, const char *type)
{
    return arena_printf(a, "memset(%s, 0, %s * sizeof(%s));", p, count, type);
}

static const char *c_launch_open(Arena *a, const char *fn) { return arena_printf(a, "%s(", fn); }

const CgDialect cg_dialect_c = {
    .name = "c",
    .kernel_prefix = "nnc_",
    .includes = "#include <stdarg.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                "#include <string.h>\n",
    .library = c_library,
    .region = c_region,
    .zero = c_zero,
    .launch_open = c_launch_open,
    .launch_close = ");",
    .sync = "",
    .module_infer = nnc_snippet_module_infer,
    .module_infer_len = &nnc_snippet_module_infer_len,
    .module_train = nnc_snippet_module_train,
    .module_train_len = &nnc_snippet_module_train_len,
};
