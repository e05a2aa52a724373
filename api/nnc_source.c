/* nnc_source.c: what a model keeps of its compilation (nnc_internal.h NncSource). */
#include "api/nnc_internal.h"

#include "common/common.h"

#include <stdlib.h>
#include <string.h>

void nnc_source_keep(NncSource *s, const char *path, const char *text, const nnc_options *opt)
{
    memset(s, 0, sizeof *s);
    s->path = strdup(path ? path : "<string>");
    if (text) {
        s->len = strlen(text);
        s->text = nnc_xmalloc(s->len + 1);
        memcpy(s->text, text, s->len + 1);
    }
    if (!opt) return;
    if (opt->network) s->network = strdup(opt->network);
    s->defines = nnc_xcalloc((size_t)(opt->n_defines > 0 ? opt->n_defines : 1), sizeof *s->defines);
    for (int i = 0; i < opt->n_defines; i++) {
        const char *eq = strchr(opt->defines[i], '=');
        if (!eq) continue;  /* compile refused it */
        s->defines[s->n_defines].name = strndup(opt->defines[i], (size_t)(eq - opt->defines[i]));
        s->defines[s->n_defines++].value = strdup(eq + 1);
    }
}

void nnc_source_free(NncSource *s)
{
    for (int i = 0; i < s->n_defines; i++) {
        free((char *)s->defines[i].name);
        free((char *)s->defines[i].value);
    }
    free(s->defines);
    free(s->network);
    free(s->text);
    free(s->path);
    memset(s, 0, sizeof *s);
}
