/* fuzz_checkpoint.c: libFuzzer harness for checkpoints (runtime/checkpoint.h).
 *
 * A checkpoint of `nnc train` is a safetensors file whose metadata carries
 * "nnc_checksum": "crc32c:XXXXXXXX" over the rest of the file. The input is a
 * checkpoint, and goes where `nnc train --resume` sends one
 * (tools/train.c restore_checkpoint), in the same order:
 *
 *   1. rt_checkpoint_check_bytes on the bytes in memory, and
 *      rt_checkpoint_verify_bytes, and rt_checkpoint_verify_file on a memfd
 *      holding them: the three must agree;
 *   2. rt_st_read of the file and rt_checkpoint_metadata (the key, value
 *      pairs --resume reads nnc_epoch, nnc_step, nnc_network, nnc_seed and the
 *      fingerprint from): when rt_st_read accepts a file, its metadata reads.
 *
 * What restore_checkpoint does next (compare the fingerprint, epoch and step
 * with this run's settings and graph, copy tensors by name and shape) needs a
 * model and its settings, and is left to tests/unit and the CLI tests.
 *
 * Then the integrity promise itself: an accepted file is written again with
 * rt_checkpoint_write (its tensors and its metadata but the old sum) under
 * the harness's folder and read back; the result must verify, and each of 8
 * single-bit flips of it (at positions drawn from the input's hash) must be
 * refused as RT_CKPT_CORRUPT, never pass as verified or as unsigned.
 *
 * Seeds (corpus/checkpoint/) are checkpoints written by make_seeds.py, signed
 * (as rt_checkpoint_write signs) and unsigned (as nnc wrote them before
 * checksums); checkpoint.dict has the JSON, safetensors and nnc metadata
 * tokens. */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/checkpoint.h"
#include "runtime/tensor_io.h"

static FzFile file;
static char out_path[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_file_init(&file, "fuzz.ckpt");
    snprintf(out_path, sizeof out_path, "%s/rewritten.ckpt", fz_tmpdir());
    return 0;
}

static const char *status_name(RtCkptStatus s)
{
    return s == RT_CKPT_VERIFIED ? "verified" : s == RT_CKPT_UNSIGNED ? "unsigned" : "corrupt";
}

/* s as a JSON string. */
static void json_string(StrBuf *sb, const char *s)
{
    sb_append(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sb_printf(sb, "\\%c", *p);
        else if (*p < 0x20) sb_printf(sb, "\\u%04x", *p);
        else sb_appendn(sb, (const char *)p, 1);
    }
    sb_append(sb, "\"");
}

/* Writes the tensors and metadata (but the sum) as a new checkpoint, and checks
 * that it verifies and that single-bit flips of it do not. */
static void rewrite(const RtTensor *ts, int n, char **kv, int nkv, uint64_t hash)
{
    StrBuf meta = {0};
    sb_append(&meta, "{");
    int k = 0;
    for (int i = 0; i < nkv; i++) {
        if (strcmp(kv[2 * i], RT_CKPT_KEY) == 0) continue;
        for (int j = 0; j < i; j++)
            if (strcmp(kv[2 * j], kv[2 * i]) == 0) goto next;  /* a duplicated key: written once */
        if (k++) sb_append(&meta, ",");
        json_string(&meta, kv[2 * i]);
        sb_append(&meta, ":");
        json_string(&meta, kv[2 * i + 1]);
    next:;
    }
    sb_append(&meta, "}");
    char err[1024];
    if (rt_checkpoint_write(out_path, ts, n, meta.data, err, sizeof err) != 0) {
        sb_free(&meta);
        return;  /* e.g. metadata strings that are not UTF-8: refused with a message, fine */
    }
    sb_free(&meta);
    size_t len = 0;
    const char *why = NULL;
    unsigned char *b = (unsigned char *)nnc_read_file(out_path, &len, &why);
    if (!b) fz_die("cannot read back %s: %s", out_path, why);
    RtCkptStatus st = rt_checkpoint_check_bytes(b, len, "rewritten", err, sizeof err);
    if (st != RT_CKPT_VERIFIED) fz_die("a checkpoint rt_checkpoint_write wrote is %s: %s", status_name(st), err);
    for (int f = 0; f < 8; f++) {
        uint64_t h = hash * 0x9E3779B97F4A7C15ull + (uint64_t)f * 0xBF58476D1CE4E5B9ull;
        size_t at = (size_t)(h >> 8) % len;
        unsigned bit = (unsigned)(h & 7);
        b[at] ^= (unsigned char)(1u << bit);
        st = rt_checkpoint_check_bytes(b, len, "flipped", err, sizeof err);
        if (st != RT_CKPT_CORRUPT)
            fz_die("bit %u of byte %zu flipped in a written checkpoint (%zu bytes): %s", bit, at, len, status_name(st));
        b[at] ^= (unsigned char)(1u << bit);
    }
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_begin(data, size);
    fz_file_set(&file, data, size);
    char err[1024] = "", err2[1024] = "";
    RtCkptStatus st = rt_checkpoint_check_bytes(data, size, "fuzz.ckpt", err, sizeof err);
    if (st == RT_CKPT_CORRUPT && !err[0]) fz_die("rt_checkpoint_check_bytes: corrupt without a message");
    if (rt_checkpoint_verify_bytes(data, size, "fuzz.ckpt", err2, sizeof err2) != (st != RT_CKPT_CORRUPT))
        fz_die("rt_checkpoint_verify_bytes disagrees with rt_checkpoint_check_bytes (%s)", status_name(st));
    RtCkptStatus fst = rt_checkpoint_verify_file(file.path, err2, sizeof err2);
    if (fst != st) fz_die("in memory the file is %s, from a file %s: %s", status_name(st), status_name(fst), err2);

    RtTensor *ts = NULL;
    int n = 0;
    if (rt_st_read(file.path, &ts, &n, err, sizeof err) != 0) return 0;
    char **kv = NULL;
    int nkv = 0;
    if (!rt_checkpoint_metadata(file.path, &kv, &nkv))
        fz_die("rt_st_read accepts the file, rt_checkpoint_metadata cannot read its metadata");
    for (int i = 0; i < nkv; i++)
        if (!kv[2 * i] || !kv[2 * i + 1]) fz_die("rt_checkpoint_metadata: pair %d has a NULL", i);
    const char *epoch = rt_checkpoint_meta_get(kv, nkv, "nnc_epoch");
    if (epoch && nkv == 0) fz_die("rt_checkpoint_meta_get found a key in empty metadata");
    if (size <= (1u << 16)) rewrite(ts, n, kv, nkv, fz_hash(data, size));
    rt_checkpoint_meta_free(kv, nkv);
    rt_tensors_free(ts, n);
    return 0;
}
