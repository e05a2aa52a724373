/* npy_labels.h: a .npy file of int32 labels, for tests that give nnc train,
 * eval or run a data set (the runtime's writer, rt_npy_write, writes float32
 * only). Header only: each test includes it once. */
#ifndef NNC_TESTS_NPY_LABELS_H
#define NNC_TESTS_NPY_LABELS_H

#include <stdint.h>
#include <stdio.h>

/* Writes v[0..n) as a 1-d '<i4' array; returns 0, or -1 if the file cannot be written. */
static int write_labels_npy(const char *path, const int32_t *v, int n)
{
    char dict[128];
    int len = snprintf(dict, sizeof dict, "{'descr': '<i4', 'fortran_order': False, 'shape': (%d,), }", n);
    int pad = (64 - (10 + len + 1) % 64) % 64;  /* magic, version, length, dict, '\n': a multiple of 64 */
    unsigned hl = (unsigned)(len + pad + 1);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc((int)(hl & 0xff), f);
    fputc((int)(hl >> 8), f);
    fwrite(dict, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(v, sizeof *v, (size_t)n, f);
    return fclose(f) == 0 ? 0 : -1;
}

#endif
