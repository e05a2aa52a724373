#!/usr/bin/env bash
# compare_outputs.sh OLD_NNC NEW_NNC [MODEL...]: are two nnc binaries' generated
# programs bit-identical? A developer tool for refactors of the code generator
# (issue 10's "behaviour unchanged"); not part of ctest (docs/testing.md).
#
# For every model (default: each models/*.net), with the same weights (written
# once by OLD_NNC's `nnc init --seed 1`) and the same inputs (a fixed
# generator in the driver below), each binary:
#   - writes inference code at -O0 and at -O2 with --batch 3; the script
#     compiles each with one driver, the same compiler and the same flags as
#     `nnc run` (cc -std=c99 -O2; cblas_sgemm with NNC_JIT_BLAS=1, as nnc's
#     JIT then uses it), and runs it at batch 1 and then at batch 3
#     on the same instance: four raw output files;
#   - writes the training module (--emit=train -O2 --batch 3), and one driver
#     takes ONE step: SGD with momentum 0.9, weight decay 1e-4, label smoothing
#     0.1, dropout seed 7, lr 0.05, on 3 samples with fixed labels (a network
#     with one output logit: binary cross-entropy, labels 0/1); it writes
#     the loss, the correct count and the step, then every tensor of the
#     module's table (parameters, buffers, optimizer state), raw.
# Files are compared with cmp: bit-identical or not, no tolerance. A model both
# binaries refuse to train (an output that is not [classes] logits) counts as
# identical when both refuse with the same message.
#
# Output: one line per model and configuration, "identical" or "DIFFERENT"
# with the first differing byte (and the tensor it falls in), then "compared M
# models, K outputs: all identical" (exit 0) or the number that differ (exit 1).
# Exit 2: usage, or a step failed (a compile error, a crash: the log is named).
# The old and the new side of a model run as two parallel jobs (JOBS=1 for one).
#
# Environment: CC (default cc), CFLAGS_EXTRA, NNC_JIT_BLAS=1, JOBS (1 or 2),
# KEEP=1 keeps the work directory (default: kept only when something differs,
# without its large files). OPENBLAS_NUM_THREADS is set to 1.
#
# Example: scripts/compare_outputs.sh /tmp/nnc-old/build/nnc build/nnc lenet5 resnet18
set -euo pipefail

usage() { echo "usage: $0 OLD_NNC NEW_NNC [MODEL...]   (models: names of models/*.net; default all)" >&2; exit 2; }
[ $# -ge 2 ] || usage
OLD=$(readlink -f "$1"); NEW=$(readlink -f "$2"); shift 2
[ -x "$OLD" ] || { echo "$0: $OLD is not an executable" >&2; exit 2; }
[ -x "$NEW" ] || { echo "$0: $NEW is not an executable" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
    set -- $(cd "$ROOT/models" && ls *.net | sed 's/\.net$//')
fi
for m in "$@"; do [ -f "$ROOT/models/$m.net" ] || { echo "$0: no model $ROOT/models/$m.net" >&2; exit 2; }; done

CC=${CC:-cc}
JOBS=${JOBS:-2}
export OPENBLAS_NUM_THREADS=1
BLAS_DIR=
if [ "${NNC_JIT_BLAS:-0}" = 1 ]; then
    for d in /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas; do
        if [ -r "$d/cblas.h" ]; then BLAS_DIR=$d; break; fi
    done
fi
CFLAGS=(-std=c99 -O2 ${CFLAGS_EXTRA:-})
LIBS=(-lm)
if [ -n "$BLAS_DIR" ]; then CFLAGS+=(-DNNC_USE_CBLAS "-I$BLAS_DIR"); LIBS=(-lopenblas -lm); fi

W=$(mktemp -d "${TMPDIR:-/tmp}/nnc-compare.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ] || [ -f "$W/.keep" ]; then echo "work directory kept: $W" >&2; else rm -rf "$W"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the drivers: compiled with each generated file, the same for both binaries ----
cat > "$W/gen.h" <<'EOF'
/* Deterministic inputs: element j of sample s of input i, in [-1, 1). */
#include <stdint.h>
static float cmp_value(int i, long s, long j, long per_sample)
{
    uint64_t z = ((uint64_t)i << 48) ^ (uint64_t)(s * per_sample + j) ^ 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) / 8388608.0f - 1.0f;
}
#define CMP_CAT_(a, b) a##b
#define CMP_CAT(a, b) CMP_CAT_(a, b)
EOF
cat > "$W/infer_driver.c" <<'EOF'
/* infer_driver WEIGHTS OUT1 OUT3: one instance, forward at n = 1 (sample 0),
 * then at n = 3, each run's outputs written raw, one after the other.
 * Compiled with -DP=prefix -DHDR="x.h" -DIN_FLOATS=a,b -DOUT_FLOATS=c,d. */
#include <stdio.h>
#include <stdlib.h>
#include HDR
#include "gen.h"
#define F(s) CMP_CAT(P, s)
static const long in_floats[] = {IN_FLOATS}, out_floats[] = {OUT_FLOATS};
enum { NI = sizeof in_floats / sizeof *in_floats, NO = sizeof out_floats / sizeof *out_floats };
int main(int argc, char **argv)
{
    F(_model) *m;
    const float *ins[NI];
    float *outs[NO];
    if (argc != 4) return 2;
    if (F(_create)(&m, argv[1], NULL) != 0) { fprintf(stderr, "create: %s\n", F(_last_error)(m)); return 1; }
    for (int i = 0; i < NI; i++) {
        float *x = malloc(3 * in_floats[i] * sizeof *x);
        for (long s = 0; s < 3; s++)
            for (long j = 0; j < in_floats[i]; j++) x[s * in_floats[i] + j] = cmp_value(i, s, j, in_floats[i]);
        ins[i] = x;
    }
    for (int o = 0; o < NO; o++) outs[o] = calloc(3 * out_floats[o], sizeof(float));
    for (int k = 0; k < 2; k++) {
        int n = k ? 3 : 1;
        if (F(_forward_v)(m, n, ins, outs) != 0) { fprintf(stderr, "forward: %s\n", F(_last_error)(m)); return 1; }
        FILE *f = fopen(argv[2 + k], "wb");
        for (int o = 0; o < NO; o++) fwrite(outs[o], sizeof(float), (size_t)(n * out_floats[o]), f);
        if (fclose(f) != 0) return 1;
    }
    F(_destroy)(m);
    return 0;
}
EOF
cat > "$W/train_driver.c" <<'EOF'
/* train_driver WEIGHTS OUT.bin OUT.idx: one training step on 3 samples, then
 * loss, correct, step and every tensor raw into OUT.bin; OUT.idx names the
 * byte range of each. Compiled with -DP=prefix_train -DHDR="x.h" -DIN_FLOATS=a
 * -DCLASSES=c. */
#include <stdio.h>
#include <stdlib.h>
#include HDR
#include "gen.h"
#define F(s) CMP_CAT(P, s)
int main(int argc, char **argv)
{
    F() *t;
    F(_config) cfg = {0};
    enum { N = 3 };
    long per = IN_FLOATS, correct = -1, off = 0;
    float *x = malloc(N * per * sizeof *x), loss = 0;
    int32_t labels[N];
    if (argc != 4) return 2;
    cfg.optimizer = 0, cfg.momentum = 0.9, cfg.dampening = 0, cfg.nesterov = 0;
    cfg.beta1 = 0.9, cfg.beta2 = 0.999, cfg.eps = 1e-8, cfg.weight_decay = 1e-4;
    cfg.label_smoothing = 0.1, cfg.seed = 7, cfg.loss = 0, cfg.aux_weight = 0.3;
    if (CLASSES == 1) cfg.loss = 1, cfg.label_smoothing = 0;  /* one logit: binary cross-entropy, labels 0/1 */
    for (long s = 0; s < N; s++) {
        for (long j = 0; j < per; j++) x[s * per + j] = cmp_value(0, s, j, per);
        labels[s] = (int32_t)(CLASSES == 1 ? s % 2 : (s * 7 + 3) % CLASSES);
    }
    if (F(_create)(&t, argv[1], &cfg) != 0) { fprintf(stderr, "create: %s\n", F(_last_error)(t)); return 1; }
    if (F(_step)(t, N, x, labels, 0.05, &loss, &correct) != 0) { fprintf(stderr, "step: %s\n", F(_last_error)(t)); return 1; }
    FILE *b = fopen(argv[2], "wb"), *ix = fopen(argv[3], "w");
    long long step = F(_get_step)(t), c = correct;
    fwrite(&loss, sizeof loss, 1, b), fwrite(&c, sizeof c, 1, b), fwrite(&step, sizeof step, 1, b);
    off = (long)(sizeof loss + 2 * sizeof c);
    fprintf(ix, "0 %ld loss=%.9g,correct=%lld,step=%lld\n", off, (double)loss, c, step);
    for (int i = 0; i < F(_tensor_count)(t); i++) {
        const char *name; int kind, rank; float *data; int64_t shape[8]; long e = 1;
        if (F(_tensor)(t, i, &name, &kind, &data, &rank, shape) != 0) return 1;
        for (int d = 0; d < rank; d++) e *= (long)shape[d];
        fwrite(data, sizeof(float), (size_t)e, b);
        fprintf(ix, "%ld %ld %s\n", off, off + e * 4, name);
        off += e * 4;
    }
    if (fclose(b) != 0 || fclose(ix) != 0) return 1;
    F(_destroy)(t);
    free(x);
    return 0;
}
EOF

# The numbers of a generated inference header: prefix, input and output floats.
header_flags() {  # HEADER -> prints -D flags
    local h=$1 up lo ins outs
    lo=$(sed -n 's/^typedef struct \([A-Za-z0-9_]*\)_model \1_model;$/\1/p' "$h")
    up=$(sed -n 's/^#define \([A-Z0-9_]*\)_MAX_BATCH .*/\1/p' "$h" | head -1)
    ins=$(sed -n "s/^#define ${up}_IN_[A-Z0-9_]*_FLOATS  *\([0-9]*\).*/\1/p" "$h" | paste -sd, -)
    outs=$(sed -n "s/^#define ${up}_OUT_[A-Z0-9_]*_FLOATS  *\([0-9]*\).*/\1/p" "$h" | paste -sd, -)
    [ -n "$lo" ] && [ -n "$ins" ] && [ -n "$outs" ] || return 1
    echo "-DP=$lo -DIN_FLOATS=$ins -DOUT_FLOATS=$outs -DFIRST_IN=${ins%%,*}"
}

# One side (old or new) of one model: everything into $W/$m/$side; a failed
# step leaves $W/$m/$side/error naming its log.
side_run() {  # SIDE NNC MODEL
    local side=$1 nnc=$2 m=$3 d="$W/$3/$1" o flags tp cls
    mkdir -p "$d"
    cd "$ROOT"  # relative model paths, as in the goldens
    for o in O0 O2; do
        if ! "$nnc" "models/$m.net" -$o --batch 3 -o "$d/$m.c" >"$d/gen_$o.log" 2>&1; then
            echo "nnc -$o failed: $d/gen_$o.log" > "$d/error"; return; fi
        if ! flags=$(header_flags "$d/$m.h"); then echo "cannot read $d/$m.h" > "$d/error"; return; fi
        # shellcheck disable=SC2086
        if ! "$CC" "${CFLAGS[@]}" -I"$W" -I"$d" $flags "-DHDR=\"$m.h\"" -o "$d/infer_$o" \
                "$W/infer_driver.c" "$d/$m.c" "${LIBS[@]}" >"$d/cc_$o.log" 2>&1; then
            echo "cc failed: $d/cc_$o.log" > "$d/error"; return; fi
        if ! "$d/infer_$o" "$W/$m/weights.safetensors" "$d/infer_${o}_b1.bin" "$d/infer_${o}_b3.bin" \
                >"$d/run_$o.log" 2>&1; then
            echo "running -$o failed: $d/run_$o.log" > "$d/error"; return; fi
    done
    if ! "$nnc" "models/$m.net" --emit=train -O2 --batch 3 -o "$d/${m}_train.c" >"$d/gen_train.log" 2>&1; then
        sed "s|$ROOT/||g" "$d/gen_train.log" > "$d/train_refused"; return; fi
    tp=$(sed -n 's/^typedef struct \([A-Za-z0-9_]*_train\) \1;$/\1/p' "$d/${m}_train.h")
    cls=$(sed -n 's/^#define [A-Z0-9_]*_TRAIN_CLASSES  *\([0-9]*\).*/\1/p' "$d/${m}_train.h")
    flags=$(header_flags "$d/$m.h")
    flags=${flags##*-DFIRST_IN=}
    if ! "$CC" "${CFLAGS[@]}" -I"$W" -I"$d" "-DP=$tp" "-DIN_FLOATS=$flags" "-DCLASSES=$cls" \
            "-DHDR=\"${m}_train.h\"" -o "$d/train" "$W/train_driver.c" "$d/${m}_train.c" "${LIBS[@]}" \
            >"$d/cc_train.log" 2>&1; then
        echo "cc failed: $d/cc_train.log" > "$d/error"; return; fi
    if ! "$d/train" "$W/$m/weights.safetensors" "$d/train.bin" "$d/train.idx" >"$d/run_train.log" 2>&1; then
        echo "the training step failed: $d/run_train.log" > "$d/error"; return; fi
}

# cmp two files: prints "identical" or "DIFFERENT ..." (with the tensor when IDX is given).
compare() {  # A B [IDX]
    local out byte name
    if out=$(cmp -- "$1" "$2" 2>&1); then echo identical; return 0; fi
    byte=$(echo "$out" | sed -n 's/.*differ: byte \([0-9]*\).*/\1/p')
    if [ -z "$byte" ]; then echo "DIFFERENT: ${out//$W\//}"; return 1; fi
    name=
    if [ -n "${3:-}" ]; then
        name=$(awk -v b=$((byte - 1)) '$1 <= b && b < $2 { print " (" $3 ", byte " b - $1 " of it)"; exit }' "$3")
    fi
    echo "DIFFERENT at byte offset $((byte - 1))$name"
    return 1
}

models=0 outputs=0 differ=0 failed=0
t0=$(date +%s)
for m in "$@"; do
    mkdir -p "$W/$m"
    (cd "$ROOT" && "$OLD" init "models/$m.net" --seed 1 -o "$W/$m/weights.safetensors") >"$W/$m/init.log" 2>&1 ||
        { echo "$m: nnc init failed: $(cat "$W/$m/init.log")"; failed=$((failed + 1)); continue; }
    ts=$(date +%s)
    if [ "$JOBS" -ge 2 ]; then
        side_run old "$OLD" "$m" & p1=$!
        side_run new "$NEW" "$m" & p2=$!
        wait $p1 $p2
    else
        side_run old "$OLD" "$m"
        side_run new "$NEW" "$m"
    fi
    models=$((models + 1))
    for side in old new; do
        if [ -f "$W/$m/$side/error" ]; then
            printf '%-22s %-9s ERROR (%s): %s\n' "$m" "" "$side" "$(cat "$W/$m/$side/error")"
            failed=$((failed + 1)); touch "$W/.keep"
        fi
    done
    [ -f "$W/$m/old/error" ] || [ -f "$W/$m/new/error" ] && continue
    for o in O0 O2; do
        for b in b1 b3; do
            r=$(compare "$W/$m/old/infer_${o}_$b.bin" "$W/$m/new/infer_${o}_$b.bin") || { differ=$((differ + 1)); touch "$W/.keep"; }
            outputs=$((outputs + 1))
            printf '%-22s %-9s %s\n' "$m" "-$o $b" "$r"
        done
    done
    if [ -f "$W/$m/old/train_refused" ] || [ -f "$W/$m/new/train_refused" ]; then
        if [ -f "$W/$m/old/train_refused" ] && [ -f "$W/$m/new/train_refused" ] &&
            cmp -s "$W/$m/old/train_refused" "$W/$m/new/train_refused"; then
            printf '%-22s %-9s identical (both refuse: %s)\n' "$m" "train" "$(head -c 120 "$W/$m/old/train_refused" | head -1)"
        else
            printf '%-22s %-9s DIFFERENT: one binary refuses to train, or with another message\n' "$m" "train"
            differ=$((differ + 1)); touch "$W/.keep"
        fi
        outputs=$((outputs + 1))
    else
        r=$(compare "$W/$m/old/train.bin" "$W/$m/new/train.bin" "$W/$m/old/train.idx") || { differ=$((differ + 1)); touch "$W/.keep"; }
        outputs=$((outputs + 1))
        printf '%-22s %-9s %s   [%s, %d tensors, %s bytes]\n' "$m" "train" "$r" \
            "$(head -1 "$W/$m/old/train.idx" | cut -d' ' -f3)" $(($(wc -l < "$W/$m/old/train.idx") - 1)) \
            "$(stat -c %s "$W/$m/old/train.bin")"
    fi
    printf '%-22s %-9s (%ss)\n' "$m" "time" $(($(date +%s) - ts))
    # the large files go; logs, sources and small outputs stay for a kept directory
    rm -f "$W/$m/weights.safetensors" "$W/$m"/*/train.bin "$W/$m"/*/infer_O? "$W/$m"/*/train
done

echo "($(($(date +%s) - t0)) s)"
if [ $differ -eq 0 ] && [ $failed -eq 0 ]; then
    echo "compared $models models, $outputs outputs: all identical"
    exit 0
fi
echo "compared $models models, $outputs outputs: $differ DIFFERENT, $failed failed"
[ $failed -ne 0 ] && exit 2
exit 1
