/* module_infer.c: the scaffolding of a generated inference module, a
 * template the code generator fills in (codegen/template.c, emit_c.c).
 *
 * Everything of NAME.c that is the same for every network lives here: the
 * instance, the error path, loading the parameters (from a file, or from a
 * safetensors image in memory: the same loader and checks, safetensors_load.c),
 * create and create_from_memory, forward_v, last_error and destroy. What depends on the network comes in through:
 *   $p, $P                the network's C prefix and macro prefix;
 *   @if FLAG / @else / @endif   lines kept or dropped by a property of the
 *                         network (params: it has parameters; consts: create
 *                         computes constants; shrink: and frees the
 *                         parameters only they read; scratch: a kernel needs
 *                         scratch; ws: a workspace; inputs: it has inputs;
 *                         profile: a hook called after each layer, for
 *                         `nnc bench --profile`);
 *   @fill NAME            a line replaced by generated text (the parameter
 *                         table's rows, the name tables, the scratch checks,
 *                         the constants' kernel calls, the run function, the
 *                         forward function with named arguments).
 * tests/unit/test_templates.c instantiates it for every valid combination of flags (consts only with params, shrink only with consts)
 * with stub fills and compiles the result with -Wall -Wextra -Werror. Text
 * before the first part marker (this comment) is not copied. */
/* @part module */
struct $p_model {
    int            ready;     /* 1 once create succeeded; else only err means anything */
    float         *params;    /* the parameters the forward pass reads, laid out as $p_param_table */
/* @if consts */
    float         *consts;    /* $P_CONST_FLOATS floats computed from params at create ($p_prepare) */
/* @endif */
    unsigned char *ws;        /* the workspace, $P_WORKSPACE_BYTES bytes */
    void          *ws_alloc;  /* the block behind ws when create allocated it, else NULL */
    nnc_ctx        ctx;       /* the instruction set and the threads the kernels run on */
    char           err[512];  /* the message of the last failure, "" if none */
/* @if profile */
    void         (*hook)(void *ctx, int node);  /* called before the first layer (-1) and after each */
    void          *hook_ctx;
/* @endif */
};

/* @if params */
/* The parameters: the name and shape each has in the safetensors file, and
 * where it goes in m->params (in floats). */
static const struct {
    const char *name;
    int         rank;
    long long   shape[4];
    long        offset;
} $p_param_table[$P_N_PARAMS] = {
/* @fill param_rows */
};

/* @endif */
/* @fill names */

/* Where create reads the parameters from: the safetensors file path, or the
 * bytes of one in memory, [data, data + size) (create_from_memory). */
typedef struct {
    const char *path;       /* the file (create), or NULL */
    const void *data;       /* the bytes (create_from_memory), or NULL */
    size_t      size;       /* their count */
    int         in_memory;  /* 1: data and size, 0: path */
} $p_source;

/* Records a message in m and returns code. */
static int $p_fail($p_model *m, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(m->err, sizeof m->err, fmt, ap);
    va_end(ap);
    return code;
}

/* Frees what create allocated, keeping the message. */
static void $p_release($p_model *m)
{
    nnc_ctx_stop(&m->ctx);
    free(m->params);
/* @if consts */
    free(m->consts);
    m->consts = NULL;
/* @endif */
    free(m->ws_alloc);
    m->params = NULL;
    m->ws = NULL;
    m->ws_alloc = NULL;
}

/* @if scratch */
/* nnc sized the scratch region from the kernels' documented needs; this
 * checks that size against the kernels themselves. */
static int $p_scratch_fits(void)
{
/* @fill scratch_checks */
}

/* @endif */
/* @if params */
/* Opens the weights (a file or memory: src) into sf, checks every parameter
 * against them (name, F32, shape) and reads those the forward pass reads
 * into m->params.
 * Those only the constants read (after $P_PARAM_KEPT_FLOATS in the table's
 * layout, shrink) are read by $p_prepare as it makes each constant. On
 * success sf stays open for it; on failure nothing is left open. */
static int $p_load($p_model *m, const $p_source *src, nnc_st_file *sf)
{
    nnc_st_want want;
    char err[256];
    int i;

    memset(sf, 0, sizeof *sf);
    if (!src->in_memory && !src->path)
        return $p_fail(m, $P_ERR_ARG, "$p_create: the weights path is NULL, but $p has parameters");
    if (src->in_memory && !src->data)
        return $p_fail(m, $P_ERR_ARG, "$p_create_from_memory: the weights are NULL, but $p has parameters");
/* @if shrink */
    m->params = (float *)malloc(((size_t)$P_PARAM_KEPT_FLOATS + 1) * sizeof(float));
/* @else */
    m->params = (float *)malloc(((size_t)$P_PARAM_FLOATS + 1) * sizeof(float));
/* @endif */
    if (!m->params)
        return $p_fail(m, $P_ERR_NOMEM, "$p_create: out of memory for the parameters");
    if ((src->in_memory ? nnc_st_begin_memory(sf, src->data, src->size, NULL, err, sizeof err)
                        : nnc_st_begin(sf, src->path, err, sizeof err)) != 0)
        return $p_fail(m, $P_ERR_WEIGHTS, "$p_create: %s", err);
    for (i = 0; i < $P_N_PARAMS; i++) {
        want.name = $p_param_table[i].name;
        want.rank = $p_param_table[i].rank;
        memcpy(want.shape, $p_param_table[i].shape, sizeof want.shape);
/* @if shrink */
        want.dst = $p_param_table[i].offset < $P_PARAM_KEPT_FLOATS ? m->params + $p_param_table[i].offset : NULL;
/* @else */
        want.dst = m->params + $p_param_table[i].offset;
/* @endif */
        if (nnc_st_read(sf, &want, err, sizeof err) != 0) {
            nnc_st_end(sf);
            return $p_fail(m, $P_ERR_WEIGHTS, "$p_create: %s", err);
        }
    }
    return $P_OK;
}

/* @endif */
/* @if shrink */
/* Reads parameter i (one only the constants read) from sf into dst, a slot
 * of $p_prepare's stage. */
static int $p_stage($p_model *m, nnc_st_file *sf, float *dst, int i)
{
    nnc_st_want want;
    char err[256];

    want.name = $p_param_table[i].name;
    want.rank = $p_param_table[i].rank;
    memcpy(want.shape, $p_param_table[i].shape, sizeof want.shape);
    want.dst = dst;
    if (nnc_st_read(sf, &want, err, sizeof err) != 0)
        return $p_fail(m, $P_ERR_WEIGHTS, "$p_create: %s", err);
    return $P_OK;
}

/* @endif */
/* @if consts */
/* Computes the constants m->consts from the parameters, once, at create. The
 * parameters only constants read are read from sf into a stage as each
 * constant is made ($P_STAGE_FLOATS floats: the most one constant reads), so
 * create never holds them all beside the constants. */
static int $p_prepare($p_model *m, nnc_st_file *sf)
{
    const float   *params = m->params;
    float         *consts = (float *)malloc((size_t)$P_CONST_FLOATS * sizeof(float));
/* @if shrink */
    float         *stage  = NULL;
    int            rc     = $P_OK;
/* @endif */
/* @if ws */
    unsigned char *ws     = m->ws;
/* @endif */
    const int      n      = 1;  /* parameters have no batch: the kernels see one sample */

/* @if ws */
    (void)ws;
/* @endif */
    (void)n;
    (void)params;
    (void)sf;
    if (!consts)
        return $p_fail(m, $P_ERR_NOMEM, "$p_create: out of memory for the constants");
    m->consts = consts;
/* @if shrink */
    stage = (float *)malloc(((size_t)$P_STAGE_FLOATS + 1) * sizeof(float));
    if (!stage)
        return $p_fail(m, $P_ERR_NOMEM, "$p_create: out of memory for the parameters' stage");
/* @endif */
/* @fill prepare_body */
/* @if shrink */
done:
    free(stage);
    return rc;
/* @else */
    return $P_OK;
/* @endif */
}

/* @endif */
/* The work of create, on a zeroed instance. */
static int $p_init($p_model *m, const $p_source *weights, void *workspace)
{
    (void)nnc_ctx_init(&m->ctx, 0);  /* without threads the instance still runs, on the caller's */
/* @if scratch */
    if (!$p_scratch_fits())
        return $p_fail(m, $P_ERR_INTERNAL, "$p_create: the scratch region is too small (a bug in nnc)");
/* @endif */
/* @if ws */
    if (workspace && (uintptr_t)workspace % sizeof(float) != 0)
        return $p_fail(m, $P_ERR_ARG, "$p_create: the workspace is not aligned for float");
    if (workspace) {
        m->ws = (unsigned char *)workspace;
    } else {
        m->ws_alloc = malloc((size_t)$P_WORKSPACE_BYTES + 64);
        if (!m->ws_alloc)
            return $p_fail(m, $P_ERR_NOMEM, "$p_create: out of memory for the workspace");
        m->ws = (unsigned char *)m->ws_alloc + (64 - (uintptr_t)m->ws_alloc % 64) % 64;
    }
/* @else */
    (void)workspace;  /* $p needs no workspace */
/* @endif */
/* @if params */
    {
        nnc_st_file sf;
        int rc = $p_load(m, weights, &sf);
        if (rc != $P_OK)
            return rc;
/* @if consts */
        rc = $p_prepare(m, &sf);
/* @endif */
        nnc_st_end(&sf);
        return rc;
    }
/* @else */
    (void)weights;    /* $p has no parameters */
/* @if !ws */
    (void)m;
/* @endif */
    return $P_OK;
/* @endif */
}

/* @fill run */
/* create and create_from_memory: a new instance reading its parameters from src. */
static int $p_new($p_model **m, const $p_source *src, void *workspace)
{
    $p_model *model;
    int rc;

    if (!m)
        return $P_ERR_ARG;
    *m = model = ($p_model *)calloc(1, sizeof *model);
    if (!model)
        return $P_ERR_NOMEM;
    rc = $p_init(model, src, workspace);
    if (rc != $P_OK) {
        $p_release(model);
        return rc;
    }
    model->ready = 1;
    return $P_OK;
}

int $p_create($p_model **m, const char *weights_safetensors, void *workspace)
{
    $p_source src;

    memset(&src, 0, sizeof src);
    src.path = weights_safetensors;
    return $p_new(m, &src, workspace);
}

int $p_create_from_memory($p_model **m, const void *weights, size_t size, void *workspace)
{
    $p_source src;

    memset(&src, 0, sizeof src);
    src.data = weights;
    src.size = size;
    src.in_memory = 1;
    return $p_new(m, &src, workspace);
}

int $p_forward_v($p_model *m, int n, const float *const *inputs, float *const *outputs)
{
    int i;

    if (!m || !m->ready)
        return $P_ERR_ARG;  /* keeps create's message */
    if (n < 1 || n > $P_MAX_BATCH)
        return $p_fail(m, $P_ERR_ARG, "$p_forward: n = %d is outside 1..%d", n, $P_MAX_BATCH);
/* @if inputs */
    if (!inputs)
        return $p_fail(m, $P_ERR_ARG, "$p_forward: the input array is NULL");
    for (i = 0; i < $P_N_INPUTS; i++)
        if (!inputs[i])
            return $p_fail(m, $P_ERR_ARG, "$p_forward: input %s is NULL", $p_input_names[i]);
/* @endif */
    if (!outputs)
        return $p_fail(m, $P_ERR_ARG, "$p_forward: the output array is NULL");
    for (i = 0; i < $P_N_OUTPUTS; i++)
        if (!outputs[i])
            return $p_fail(m, $P_ERR_ARG, "$p_forward: output %s is NULL", $p_output_names[i]);
    nnc_ctx_begin(&m->ctx);  /* the threads poll for work until the layers are done */
    $p_run(m, n, inputs, outputs);
    nnc_ctx_end(&m->ctx);
    m->err[0] = '\0';
    return $P_OK;
}

/* @fill forward */
const char *$p_last_error(const $p_model *m)
{
    return m ? m->err : "out of memory";
}

int $p_set_threads($p_model *m, int threads)
{
    if (!m || !m->ready)
        return $P_ERR_ARG;
    nnc_ctx_stop(&m->ctx);
    if (nnc_ctx_init(&m->ctx, threads < 0 ? 1 : threads) != 0)
        return $p_fail(m, $P_ERR_NOMEM, "$p_set_threads: could not start %d threads", threads);
    return $P_OK;
}

void $p_destroy($p_model *m)
{
    if (!m)
        return;
    $p_release(m);
    free(m);
}
/* @if profile */

void $p_set_profile_hook($p_model *m, void (*hook)(void *ctx, int node), void *ctx)
{
    m->hook = hook;
    m->hook_ctx = ctx;
}
/* @endif */
