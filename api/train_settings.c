/* train_settings.c: a training model's train section, read when it is
 * compiled (api/compile.c, nnc_options.mode NNC_TRAINING) and kept in the
 * model, so that nnc_trainer_create (nnc_train.c) starts from the settings
 * the network's author wrote without reading the source again (an import
 * resolver lives only as long as the compilation). */
#include "api/nnc_internal.h"

#include "common/common.h"

#include <stdlib.h>
#include <string.h>

bool nnc_train_settings_read(const char *path, const char *text, size_t len, const FeOptions *fe, Diag *d,
                             NncSetting **out, int *n)
{
    FeTrainSetting *st = NULL;
    int count = 0;
    *out = NULL, *n = 0;
    bool ok = text ? fe_train_settings_text(path, text, len, fe, &st, &count, d)
                   : fe_train_settings(path, fe, &st, &count, d);
    if (!ok || count == 0) return ok;
    *out = nnc_xcalloc((size_t)count, sizeof **out);
    for (int i = 0; i < count; i++) {
        (*out)[i].flag = strdup(st[i].flag);
        (*out)[i].value = st[i].value ? strdup(st[i].value) : NULL;
    }
    *n = count;
    return true;
}

void nnc_settings_free(NncSetting *s, int n)
{
    for (int i = 0; s && i < n; i++) {
        free(s[i].flag);
        free(s[i].value);
    }
    free(s);
}
