/* pass.c: the pass manager. The pipeline is the table below, in order. */
#include "passes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const Pass pipeline[] = {
    {"dce", 1, pass_dce},
};

#ifdef NDEBUG
static const bool verify_each = false;
#else
static const bool verify_each = true;
#endif

bool pass_run_pipeline(IrGraph *g, int level, char *err, size_t errlen)
{
    char why[512];
    if (verify_each && !ir_verify(g, why, sizeof why)) {
        snprintf(err, errlen, "the elaborated graph is malformed: %s", why);
        return false;
    }
    for (size_t i = 0; i < NNC_COUNT(pipeline); i++) {
        if (level < pipeline[i].min_level) continue;
        if (!pipeline[i].run(g, err, errlen)) return false;
        if (verify_each && !ir_verify(g, why, sizeof why)) {
            snprintf(err, errlen, "after pass '%s': %s", pipeline[i].name, why);
            return false;
        }
    }
    return true;
}

int pass_count_kernels(const IrGraph *g) { return g->n_nodes; }

void pass_replace_graph(IrGraph *dst, IrGraph *src)
{
    arena_free(&dst->arena);
    *dst = *src;
    free(src);
}
