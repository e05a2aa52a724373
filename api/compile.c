/* compile.c: from a network's source to a model (include/nnc/nnc.h:
 * nnc_compile and the two older forms over it).
 *
 *   options -> FeOptions (defines split at '=', the import resolver behind a
 *   trampoline) -> fe_compile[_text] -> the pipeline of the mode at the level
 *   and batch asked for -> nnc_model
 *
 * Every message, the options' own included, goes through one Diag, so the
 * text the older entry points return and the structured list nnc_compile
 * returns are the same messages (api/diagnostics.c). */
#include "nnc/nnc.h"
#include "api/nnc_internal.h"

#include "common/common.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>

/* The code generators nnc_options.target may name. */
static const char *const targets[] = {"c"};

/* The front end's resolver call, handed to the caller's (FeResolver over
 * nnc_import_resolver: the same contract, the public names). */
static int resolve(void *ctx, const char *importer, const char *import, FeImport *out)
{
    const nnc_options *opt = ctx;
    nnc_import imp = {0};
    int rc = opt->resolve(opt->resolve_user, importer, import, &imp);
    *out = (FeImport){imp.name, imp.text, imp.length, imp.error};
    return rc == NNC_IMPORT_FOUND ? 0 : rc == NNC_IMPORT_FROM_DISK ? 1 : -1;
}

/* The pass level of opt_level, clamped to 0..2 (0 is -O0, as since 0.1.0). */
static int level_of(int opt_level) { return opt_level < 0 ? 0 : opt_level > 2 ? 2 : opt_level; }

/* Checks opt (NULL: the defaults) and fills fe from it; false after reporting to d. */
static bool read_options(const nnc_options *opt, FeOptions *fe, Diag *d)
{
    *fe = (FeOptions){0};
    if (!opt) return true;
    fe->network = opt->network;
    if (opt->target) {
        bool known = false;
        for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) known |= strcmp(opt->target, targets[i]) == 0;
        if (!known) diag_error(d, (Loc){0}, "target '%s' is not supported; supported targets: c", opt->target);
    }
    if (opt->max_batch < 0)
        diag_error(d, (Loc){0}, "max_batch %d: a batch is at least 1 sample (0 takes the default, 1)", opt->max_batch);
    if (opt->mode != NNC_INFERENCE && opt->mode != NNC_TRAINING)
        diag_error(d, (Loc){0}, "mode %d: the modes are NNC_INFERENCE (0) and NNC_TRAINING (1)", (int)opt->mode);
    if (opt->n_defines < 0 || (opt->n_defines > 0 && !opt->defines))
        diag_error(d, (Loc){0}, "n_defines %d without as many defines", opt->n_defines);
    FeDefine *defs = opt->n_defines > 0 ? arena_alloc(d->arena, (size_t)opt->n_defines * sizeof *defs) : NULL;
    for (int i = 0; i < opt->n_defines && opt->defines && !d->errors; i++) {
        const char *eq = opt->defines[i] ? strchr(opt->defines[i], '=') : NULL;
        if (!eq || eq == opt->defines[i]) {
            diag_error(d, (Loc){0}, "define '%s' is not NAME=VALUE", opt->defines[i] ? opt->defines[i] : "(null)");
            break;
        }
        defs[fe->n_defines].name = arena_strndup(d->arena, opt->defines[i], (size_t)(eq - opt->defines[i]));
        defs[fe->n_defines++].value = eq + 1;
    }
    fe->defines = defs;
    if (opt->resolve) {
        fe->resolve = resolve;
        fe->resolve_ctx = (void *)opt;
    }
    return d->errors == 0;
}

/* The graph of src through the pipeline opt asks for, or NULL after reporting
 * to d; for training, the train section's settings into m. */
static IrGraph *build(const nnc_source *src, const nnc_options *opt, Diag *d, nnc_model *m)
{
    FeOptions fe;
    if (!src || (!src->path && !src->text)) {
        diag_error(d, (Loc){0}, "no source to compile: give nnc_source.path (a file) or .text");
        return NULL;
    }
    if (!read_options(opt, &fe, d)) return NULL;
    IrGraph *g = src->text ? fe_compile_text(src->path ? src->path : "<string>", src->text,
                                             src->length ? src->length : strlen(src->text), &fe, d)
                           : fe_compile(src->path, &fe, d);
    if (!g) return NULL;
    if (opt && opt->mode == NNC_TRAINING &&
        !nnc_train_settings_read(src->path ? src->path : "<string>", src->text,
                                 src->text && !src->length ? strlen(src->text) : src->length, &fe, d, &m->train,
                                 &m->n_train)) {
        ir_free(g);
        return NULL;
    }
    int level = level_of(opt ? opt->opt_level : 2);
    int batch = opt && opt->max_batch > 0 ? opt->max_batch : 1;
    char err[512];
    bool ok = opt && opt->mode == NNC_TRAINING ? pass_run_training_pipeline(g, level, batch, NULL, NULL, err, sizeof err)
                                               : pass_run_pipeline_batch(g, level, batch, NULL, NULL, err, sizeof err);
    if (!ok) {
        diag_error(d, (Loc){0}, "internal error after a pass: %s", err);
        ir_free(g);
        return NULL;
    }
    return g;
}

/* nnc_compile, with the messages left in d for the caller to hand out. */
static int compile(const nnc_source *src, const nnc_options *opt, nnc_model **out, Diag *d)
{
    *out = NULL;
    nnc_model *m = nnc_xcalloc(1, sizeof *m);
    IrGraph *g = build(src, opt, d, m);
    if (!g) {
        if (!d->errors) diag_error(d, (Loc){0}, "compilation failed");
        nnc_model_free(m);
        return -1;
    }
    m->g = g;
    m->max_batch = opt && opt->max_batch > 0 ? opt->max_batch : 1;
    m->mode = opt ? opt->mode : NNC_INFERENCE;
    *out = m;
    return 0;
}

int nnc_compile(const nnc_source *src, const nnc_options *opt, nnc_model **out, nnc_diagnostics **diags)
{
    Arena arena = {0};
    Diag d;
    diag_init(&d, &arena);
    int rc = compile(src, opt, out, &d);
    if (diags) *diags = nnc_diagnostics_from(&d);
    diag_free(&d);
    arena_free(&arena);
    return rc;
}

/* The older entry points: the rendered text on failure, NULL on success. */
static int compile_text(const nnc_source *src, const nnc_options *opt, nnc_model **out, char **diagnostics)
{
    Arena arena = {0};
    Diag d;
    diag_init(&d, &arena);
    int rc = compile(src, opt, out, &d);
    if (diagnostics) *diagnostics = rc == 0 ? NULL : strdup(d.out.data ? d.out.data : "");
    diag_free(&d);
    arena_free(&arena);
    return rc;
}

int nnc_compile_file(const char *path, const nnc_options *opt, nnc_model **out, char **diagnostics)
{
    nnc_source src = {.path = path};
    return compile_text(&src, opt, out, diagnostics);
}

int nnc_compile_string(const char *path, const char *text, const nnc_options *opt, nnc_model **out,
                       char **diagnostics)
{
    nnc_source src = {.path = path ? path : "<string>", .text = text ? text : ""};
    return compile_text(&src, opt, out, diagnostics);
}

void nnc_model_free(nnc_model *m)
{
    if (!m) return;
    ir_free(m->g);
    nnc_settings_free(m->train, m->n_train);
    free(m);
}
