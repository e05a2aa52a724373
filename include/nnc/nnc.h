/* nnc.h: the public C API of libnnc.
 *
 * Compile a network written in the nnc language, in process: parse and check
 * it, optimize it, and get the generated C source and header, or compile and
 * load it right away and run inference. Everything else under the source tree
 * (frontend/, ir/, passes/, codegen/, runtime/) is internal and may change;
 * this header is the stable surface.
 *
 *     nnc_model *m;
 *     char *diag;
 *     if (nnc_compile_file("models/lenet5.net", NULL, &m, &diag) != 0) {
 *         fputs(diag, stderr);            // FILE:LINE:COL: error: ... with caret
 *         free(diag);
 *         return 1;
 *     }
 *     nnc_instance *inst;
 *     if (nnc_load(m, "lenet5.safetensors", 8, &inst, &diag) != 0) { ... }
 *     const float *in[1] = {images};
 *     float *out[1] = {logits};
 *     nnc_forward(inst, 8, in, out);
 *     nnc_instance_free(inst);
 *     nnc_model_free(m);
 *
 * Strings returned through char ** are malloc'd and belong to the caller.
 * Functions return 0 on success and -1 on failure, with a message. There is
 * no global mutable state: separate models and instances may be used from
 * separate threads. */
#ifndef NNC_NNC_H
#define NNC_NNC_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnc_model nnc_model;        /* a checked, optimized network */
typedef struct nnc_instance nnc_instance;  /* its generated code, compiled and loaded, with weights */

typedef struct {
    const char *network;        /* which network of the file; NULL: its only one */
    int opt_level;              /* 0, 1 or 2 (the default when the options are NULL) */
    const char *const *defines; /* "NAME=VALUE" overrides of network parameters */
    int n_defines;
} nnc_options;

/* Compiles the .net file at path (and what it imports). On failure returns -1
 * and sets *diagnostics to the messages, as the nnc command prints them. */
int nnc_compile_file(const char *path, const nnc_options *opt, nnc_model **out, char **diagnostics);

/* The same from text in memory; path names it in messages and anchors imports. */
int nnc_compile_string(const char *path, const char *text, const nnc_options *opt, nnc_model **out,
                       char **diagnostics);

void nnc_model_free(nnc_model *m);

/* The network's name, and its inputs and outputs in declaration order, with
 * their per-sample element counts (the batch is the leading dimension). */
const char *nnc_model_name(const nnc_model *m);
int nnc_model_inputs(const nnc_model *m);
int nnc_model_outputs(const nnc_model *m);
const char *nnc_model_input_name(const nnc_model *m, int i);
const char *nnc_model_output_name(const nnc_model *m, int i);
long long nnc_model_input_size(const nnc_model *m, int i);
long long nnc_model_output_size(const nnc_model *m, int i);

/* The IR as text (what --emit=ir prints). */
int nnc_emit_ir(const nnc_model *m, char **text);

/* The generated C source and header for at most max_batch samples per call;
 * header_name is how the source #includes the header ("lenet5.h"). */
int nnc_emit_c(const nnc_model *m, int max_batch, const char *header_name, char **c_source, char **header,
               char **error);

/* Generates, compiles (with the system C compiler, and OpenBLAS when nnc was
 * built with it) and loads the network for at most max_batch samples per
 * call, then creates an instance with the weights of a safetensors file. */
int nnc_load(const nnc_model *m, const char *weights_safetensors, int max_batch, nnc_instance **out, char **error);

/* Runs n samples (1 <= n <= max_batch): one pointer per input, then per
 * output, in declaration order. On failure, nnc_instance_error explains. */
int nnc_forward(nnc_instance *inst, int n, const float *const *inputs, float *const *outputs);
const char *nnc_instance_error(const nnc_instance *inst);
void nnc_instance_free(nnc_instance *inst);

const char *nnc_version(void);

#ifdef __cplusplus
}
#endif
#endif
