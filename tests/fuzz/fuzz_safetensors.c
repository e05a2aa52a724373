/* fuzz_safetensors.c: libFuzzer harness for the safetensors readers.
 *
 * There is one safetensors parser in nnc, runtime/snippets/safetensors_load.c,
 * pasted into every generated model and #included by runtime/tensor_io.c. Its
 * entry points take a path, so the input goes to a memfd (fuzz_common.h) and
 * is read by all three:
 *
 *   - rt_st_read (tensor_io: the tools' reader, every tensor, F32 only);
 *   - rt_st_names (tensor_io: the header alone);
 *   - nnc_st_load (the snippet: what generated code runs at create), asked
 *     for every F32 tensor of rank <= 4 the header lists, with its own shape;
 *   - nnc_st_load_memory (create_from_memory's loader) on the input itself,
 *     libFuzzer's exact buffer, so a read past its end is a sanitizer report.
 *
 * This file #includes the snippet as tensor_io.c does (its functions are all
 * static), to call nnc_st_load and nnc_st_open. Beyond sanitizer reports, the
 * readers must agree: when rt_st_read accepts a file, rt_st_names gives the
 * same names in the same order, and nnc_st_load loads the same bytes; and
 * nnc_st_load_memory gives nnc_st_load's verdict and message on every input
 * (the path read as "<memory>", "file" as "buffer"). The
 * seeds (corpus/safetensors/) are small files that nnc itself wrote; the
 * dictionary has the JSON and safetensors tokens. */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/snippets/safetensors_load.c"
#include "runtime/tensor_io.h"

static FzFile file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_file_init(&file, "fuzz.safetensors");
    return 0;
}

/* rt_st_names agrees with what rt_st_read returned. */
static void check_names(const RtTensor *ts, int n)
{
    char **names = NULL, err[1024];
    int nn = 0;
    if (rt_st_names(file.path, &names, &nn, err, sizeof err) != 0)
        fz_die("rt_st_read accepted the file, rt_st_names refused it: %s", err);
    if (nn != n) fz_die("rt_st_read found %d tensors, rt_st_names %d", n, nn);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], ts[i].name) != 0) fz_die("tensor %d: rt_st_read says '%s', rt_st_names '%s'", i, ts[i].name, names[i]);
    if (names[n] != NULL) fz_die("rt_st_names: the list does not end with NULL");
    free(names);
}

/* The file loader's message as the memory loader must word it: the path
 * becomes "<memory>", "file" becomes "buffer" (except in "not a safetensors
 * file", true of both). */
static void as_memory(const char *msg, char *out, size_t len)
{
    size_t o = 0, n = strlen(file.path);
    const char *start;
    if (strncmp(msg, file.path, n) == 0) o = (size_t)snprintf(out, len, "<memory>"), msg += n;
    start = msg;
    while (*msg && o + 8 < len) {
        if (strncmp(msg, "file", 4) == 0 && !(msg - start >= 12 && strncmp(msg - 12, "safetensors ", 12) == 0)) {
            memcpy(out + o, "buffer", 6), o += 6, msg += 4;
        } else {
            out[o++] = *msg++;
        }
    }
    out[o] = '\0';
}

/* Whether the input holds the bytes "file" (in a tensor name, they would be
 * rewritten by as_memory where the loader leaves them). */
static int has_file_word(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i + 4 <= size; i++)
        if (memcmp(data + i, "file", 4) == 0) return 1;
    return 0;
}

/* The memory loader on data: nnc_st_load's verdict, message and bytes. */
static void check_memory(const uint8_t *data, size_t size, const nnc_st_want *want, int n)
{
    char ferr[1024] = "", merr[1024] = "", expect[1200];
    nnc_st_want *mw = calloc((size_t)n + 1, sizeof *mw);
    for (int i = 0; i < n; i++) {
        size_t bytes = 4;
        for (int j = 0; j < want[i].rank; j++) bytes *= (size_t)want[i].shape[j];
        mw[i] = want[i];
        mw[i].dst = want[i].dst ? malloc(bytes ? bytes : 4) : NULL;
    }
    int rf = nnc_st_load(file.path, want, n, ferr, sizeof ferr);
    int rm = nnc_st_load_memory(data, size, NULL, mw, n, merr, sizeof merr);
    if (rf != rm) fz_die("nnc_st_load says %d (%s), nnc_st_load_memory %d (%s)", rf, ferr, rm, merr);
    as_memory(ferr, expect, sizeof expect);
    if (rf != 0 && !has_file_word(data, size) && strcmp(merr, expect) != 0) fz_die("messages differ: file \"%s\", memory \"%s\"", ferr, merr);
    for (int i = 0; i < n; i++) {
        size_t bytes = 4;
        for (int j = 0; j < want[i].rank; j++) bytes *= (size_t)want[i].shape[j];
        if (rf == 0 && want[i].dst && bytes && memcmp(want[i].dst, mw[i].dst, bytes) != 0)
            fz_die("tensor '%s': nnc_st_load and nnc_st_load_memory read different bytes", want[i].name);
        free(mw[i].dst);
    }
    free(mw);
}

/* nnc_st_load, asked for the tensors of rank <= 4, loads what rt_st_read read
 * (and nnc_st_load_memory on the input the same). */
static void check_loader(const RtTensor *ts, int n, const uint8_t *data, size_t size)
{
    nnc_st_want *want = calloc((size_t)n + 1, sizeof *want);
    const RtTensor **src = calloc((size_t)n + 1, sizeof *src);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (ts[i].rank > 4) continue;
        int64_t numel = rt_tensor_numel(&ts[i]);
        want[k].name = ts[i].name;
        want[k].rank = ts[i].rank;
        for (int j = 0; j < ts[i].rank; j++) want[k].shape[j] = ts[i].shape[j];
        want[k].dst = malloc(numel > 0 ? (size_t)numel * 4 : 4);
        src[k++] = &ts[i];
    }
    char err[1024];
    if (nnc_st_load(file.path, want, k, err, sizeof err) != 0)
        fz_die("rt_st_read accepted the file, the generated code's nnc_st_load refused it: %s", err);
    check_memory(data, size, want, k);
    for (int i = 0; i < k; i++) {
        int64_t numel = rt_tensor_numel(src[i]);
        if (numel > 0 && memcmp(want[i].dst, src[i]->data, (size_t)numel * 4) != 0)
            fz_die("tensor '%s': nnc_st_load and rt_st_read read different bytes", src[i]->name);
        free(want[i].dst);
    }
    free(want);
    free(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_begin(data, size);
    fz_file_set(&file, data, size);
    RtTensor *ts = NULL;
    int n = 0;
    char err[1024];
    if (rt_st_read(file.path, &ts, &n, err, sizeof err) == 0) {
        for (int i = 0; i < n; i++)
            if (!ts[i].name || !ts[i].data || rt_tensor_numel(&ts[i]) < 0) fz_die("rt_st_read: tensor %d is incomplete", i);
        check_names(ts, n);
        check_loader(ts, n, data, size);
        rt_tensors_free(ts, n);
    } else {
        if (!err[0]) fz_die("rt_st_read failed without a message");
        char **names = NULL;
        int nn = 0;
        if (rt_st_names(file.path, &names, &nn, err, sizeof err) == 0) free(names);  /* a non-F32 file, say */
        nnc_st_want none = {"x", 0, {0}, NULL};
        check_memory(data, size, &none, 1);  /* the loaders' own path on a refused file, from both sources */
    }
    return 0;
}
