/* data_internal.h: what the three files of data.h's module share: data.c (the
 * data sets, read from their files into memory; and dt_fail), data_loader.c
 * (the loader: options, the order of an epoch, augmentation, batches, the
 * state a checkpoint keeps) and data_prefetch.c (the reader thread that makes
 * the next batch while the step runs). Nothing here is used outside runtime/. */
#ifndef NNC_RUNTIME_DATA_INTERNAL_H
#define NNC_RUNTIME_DATA_INTERNAL_H

#include "common/common.h"

#include <stddef.h>

/* Writes "SPEC: message" into err (errlen bytes; err may be NULL) and returns -1. */
int dt_fail(char *err, size_t errlen, const char *spec, const char *fmt, ...) NNC_PRINTF(4, 5);

#endif
