/* codegen_fixture.h: what the code generator's tests share (test_codegen.c,
 * test_codegen_run.c, test_codegen_fusions.c, test_templates.c), compiled
 * once into each of them from codegen_fixture.c:
 *
 *   - small graphs built with the IR API (no parser), with random weights;
 *   - a naive reference interpreter of those graphs (one small function per
 *     op, double accumulators);
 *   - the plumbing: emit C with cg_emit_c into a private temporary directory,
 *     write the weights with rt_st_write, run a compiler with its output in a
 *     log, compile the generated code with gcc and clang under the strict
 *     flags users will use, load it with rt_cc_load, and compare forward's
 *     outputs with the reference.
 *
 * Include after cmocka.h (the helpers fail the running test). */
#ifndef NNC_TEST_CODEGEN_FIXTURE_H
#define NNC_TEST_CODEGEN_FIXTURE_H

#include "codegen/emit_c.h"
#include "runtime/jit_cc.h"
#include "runtime/tensor_io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { MAX_VALUES = 128, MAX_BATCH = 4 };

/* ------------------------------------------------------------ graphs ---- */

typedef struct {
    IrGraph *g;
    float *data[MAX_VALUES];  /* params: random values; after ref_run, every value */
    bool owned[MAX_VALUES];   /* data[v] is ours to free */
    RtRng rng;
    int line;                 /* fake DSL line of the next node */
} Net;

Net *net_new(const char *name);
void net_free(Net *net);
IrShape shape_of(int rank, const int64_t *d);
int32_t net_input(Net *net, const char *name, int rank, int64_t c, int64_t h, int64_t w);
/* A parameter of shape s, uniform in [lo, hi). */
int32_t net_param(Net *net, const char *name, IrShape s, float lo, float hi);
int32_t net_node(Net *net, OpKind op, const int32_t *ins, int n_in, const IrAttr *attr, const char *scope);
int32_t net_unary(Net *net, OpKind op, int32_t x);
/* "scope.leaf" in one of 8 rotating static buffers. */
char *scoped(const char *scope, const char *leaf);
/* conv (or conv_transpose) with PyTorch-layout weight and optional bias. */
int32_t net_conv(Net *net, int32_t x, const char *scope, int k, int ks, int stride, int pad, int groups, bool bias,
                 bool transposed, int out_pad);
int32_t net_bn(Net *net, int32_t x, const char *scope);
int32_t net_linear(Net *net, int32_t x, const char *scope, int out);
int32_t net_pool(Net *net, OpKind op, int32_t x, int k, int stride, int pad);

/* The test networks (codegen_fixture.c says what each covers). */
Net *cnn_net(void);          /* conv -> bn -> relu -> maxpool -> flatten -> linear */
Net *concat_add_net(void);   /* branches concatenated, a residual add */
Net *conv_t_net(void);       /* transposed convolutions */
Net *passthrough_net(void);  /* the output is the input */
Net *two_outputs_net(void);  /* several outputs, C-keyword names */
Net *zoo_net(void);          /* every other op once */
Net *constant_net(void);     /* no input: the output is a parameter */

typedef Net *(*NetFn)(void);
enum { N_ALL_NETS = 7 };
extern const NetFn all_nets[N_ALL_NETS];

/* ------------------------------------------------- reference interpreter ---- */

/* Runs the graph on n samples of the given inputs; afterwards net->data[v] holds every value. */
void ref_run(Net *net, int n, float *const *inputs);

/* ----------------------------------------------------------- plumbing ---- */

typedef struct {
    char dir[64];        /* private temp dir for weights and sources */
    char prefix[256];
    char header[280];
    StrBuf c, h;
} Emitted;

/* Plans memory for max_batch and emits net's C into e (a fresh temporary directory). */
void emit(Net *net, int max_batch, Emitted *e);
void path_in(const Emitted *e, const char *name, char *buf, size_t len);
void write_text(const Emitted *e, const char *name, const char *text);
/* Removes the files this test put in e->dir, and the directory. */
void emitted_free(Emitted *e);
/* Writes the params of net to DIR/w.safetensors, leaving out `skip` and giving `reshape` a wrong shape. */
void write_weights(const Net *net, const Emitted *e, const char *skip, const char *reshape);
/* Runs argv with its standard output and error in the file log; returns the
 * exit status (127: not found), printing the log on any other failure. */
int run_logged(const char *log, char *const *argv);
/* run_logged with the log in DIR/cc.log. */
int run(const Emitted *e, char *const *argv);
/* The directory of cblas.h, or NULL. */
const char *cblas_dir(void);
/* The generated .c compiles without a warning under gcc and clang, with and without BLAS. */
void assert_compiles_cleanly(Net *net);

typedef struct {
    Emitted e;
    RtModel rt;
    void *m;
} Loaded;

/* Emits, writes weights, compiles and loads; returns create's code (m set either way). */
int load(Net *net, Loaded *l, const char *skip, const char *reshape, bool weights);
void unload(Loaded *l);
float *random_batch(RtRng *rng, int64_t count);
/* forward on a random batch of n matches the reference within float tolerance. */
void assert_forward_matches(Net *net, Loaded *l, int n);

#endif
