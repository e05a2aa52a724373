/* nnc_outputs.c: what `nnc MODEL.net` writes besides the generated code, for
 * builds that use nnc as a step (cmake/nnc.cmake):
 *
 *   --depfile FILE         the files the output depends on, in make syntax,
 *                          as gcc -MD writes them: "OUT: MAIN.net IMPORT.net ...
 *                          [WEIGHTS]", every path made absolute (so the build
 *                          tool finds it from any directory), spaces, '#' and
 *                          '$' escaped; written atomically after OUT.
 *   --embed-weights W      the weights W checked against the network now (every
 *                          parameter present, float32, of the network's shape),
 *                          then OUT_weights.S, which .incbin's W (the bytes of
 *                          the file, linked as they are: no decimal text for the
 *                          compiler to parse), and PREFIX_create_embedded in the
 *                          generated C and header, which hands those bytes to
 *                          PREFIX_create_from_memory.
 *   --check-weights W      the same check alone (W joins the --depfile list):
 *                          nnc_add_model's WEIGHTS without EMBED_WEIGHTS.
 *
 * The generated code itself is codegen's; this file only appends a wrapper
 * whose signature it reads from the header codegen wrote (PREFIX_create's), so
 * it holds for the inference module and the training module alike. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "tools/nnc_internal.h"

#include "runtime/tensor_io.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* path made absolute when it exists (realpath), else as given; malloc'd */
static char *abs_path(const char *path)
{
    char *real = realpath(path, NULL);
    return real ? real : strdup(path);
}

/* path in make syntax: ' ' and '#' escaped with a backslash, '$' doubled */
static void dep_path(StrBuf *sb, const char *path)
{
    for (const char *p = path; *p; p++) {
        if (*p == ' ' || *p == '#') sb_printf(sb, "\\%c", *p);
        else if (*p == '$') sb_printf(sb, "$$");
        else sb_printf(sb, "%c", *p);
    }
}

int cli_write_depfile(const char *depfile, const char *out, const char *const *files, int n_files,
                      const char *weights)
{
    StrBuf sb = {0};
    char *a = abs_path(out);
    dep_path(&sb, a);
    free(a);
    sb_printf(&sb, ":");
    for (int i = 0; i <= n_files; i++) {
        const char *f = i < n_files ? files[i] : weights;
        if (!f) continue;
        a = abs_path(f);
        sb_printf(&sb, " \\\n  ");
        dep_path(&sb, a);
        free(a);
    }
    sb_printf(&sb, "\n");
    int rc = 0;
    if (nnc_write_file_atomic(depfile, sb.data, sb.len) != 0) {
        fprintf(stderr, "nnc: --depfile: cannot write '%s': %s\n", depfile, strerror(errno));
        rc = 1;
    }
    sb_free(&sb);
    return rc;
}

/* ---- --embed-weights ---- */

static void shape_text(char *buf, size_t n, int rank, const int64_t *dim)
{
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < rank && at < n; k++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", k ? ", " : "", (long long)dim[k]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

int cli_check_weights(const char *path, const IrGraph *g)
{
    RtTensor *t;
    int n;
    char err[1024];
    if (rt_st_read(path, &t, &n, err, sizeof err) != 0) {  /* its messages name the path */
        fprintf(stderr, "nnc: weights: %s\n", err);
        return 1;
    }
    int bad = 0;  /* mismatches; the first 8 are told (a wrong file fails every tensor) */
    for (int32_t i = 0; i < g->n_params; i++) {
        const IrValue *v = &g->values[g->params[i]];
        const RtTensor *f = NULL;
        for (int k = 0; k < n && !f; k++)
            if (strcmp(t[k].name, v->name) == 0) f = &t[k];
        char want[160], got[160];
        shape_text(want, sizeof want, v->shape.rank, v->shape.dim);
        if (!f) {
            if (bad++ < 8)
                fprintf(stderr, "nnc: weights %s: no tensor '%s' (network %s reads it, shape %s)\n", path,
                        v->name, g->name, want);
            continue;
        }
        shape_text(got, sizeof got, f->rank, f->shape);
        if (strcmp(want, got) != 0 && bad++ < 8) {
            fprintf(stderr, "nnc: weights %s: tensor '%s' has shape %s, network %s reads %s\n", path,
                    v->name, got, g->name, want);
        }
    }
    if (bad > 8) fprintf(stderr, "nnc: weights %s: and %d more tensors missing or of another shape\n", path, bad - 8);
    rt_tensors_free(t, n);
    return bad ? 1 : 0;
}

/* The .S beside OUT.c: W's bytes between PREFIX_weights_blob and
 * PREFIX_weights_blob_end, in read-only data, 64-byte aligned. Preprocessed
 * (.S), for Mach-O's section and leading underscore. */
static void emit_asm(StrBuf *s, const char *prefix, const char *weights_abs)
{
    sb_printf(s, "/* Written by nnc --embed-weights: the bytes of the weights file linked in as\n"
                 " * they are, for %s_create_embedded. Do not edit. */\n", prefix);
    sb_printf(s, "#if defined(__APPLE__)\n"
                 "#define NNC_SYM(x) _##x\n"
                 "    .section __TEXT,__const\n"
                 "#else\n"
                 "#define NNC_SYM(x) x\n"
                 "    .section .rodata.nnc_weights,\"a\"\n"
                 "#endif\n"
                 "    .p2align 6\n"
                 "    .globl NNC_SYM(%s_weights_blob)\n"
                 "    .globl NNC_SYM(%s_weights_blob_end)\n"
                 "#if defined(__ELF__)\n"
                 "    .type %s_weights_blob, %%object\n"
                 "    .type %s_weights_blob_end, %%object\n"
                 "#endif\n"
                 "NNC_SYM(%s_weights_blob):\n"
                 "    .incbin \"",
              prefix, prefix, prefix, prefix, prefix);
    for (const char *p = weights_abs; *p; p++) {
        if (*p == '"' || *p == '\\') sb_printf(s, "\\");
        sb_printf(s, "%c", *p);
    }
    sb_printf(s, "\"\n"
                 "NNC_SYM(%s_weights_blob_end):\n"
                 "    .byte 0\n"
                 "#if defined(__ELF__)\n"
                 "    .section .note.GNU-stack,\"\",%%progbits\n"
                 "#endif\n",
              prefix);
}

/* From the header's "int P_create(T **x, const char *weights..., REST)": P, "T **x", REST and
 * REST's last word (the argument's name). false if the header has no such declaration. */
static bool parse_create(const char *h, char *prefix, char *first, char *rest, char *rest_name, size_t n)
{
    for (const char *p = strstr(h, "\nint "); p; p = strstr(p + 1, "\nint ")) {
        const char *name = p + 5, *paren = strchr(name, '(');
        if (!paren || paren - name < 8 || strncmp(paren - 7, "_create", 7) != 0) continue;
        const char *c1 = strchr(paren, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL, *end = c2 ? strchr(c2, ')') : NULL;
        if (!end || (size_t)(end - name) >= n || memchr(name, ';', (size_t)(end - name))) continue;
        snprintf(prefix, n, "%.*s", (int)(paren - 7 - name), name);
        snprintf(first, n, "%.*s", (int)(c1 - paren - 1), paren + 1);
        const char *r = c2 + 1;
        while (*r == ' ') r++;
        snprintf(rest, n, "%.*s", (int)(end - r), r);
        const char *w = end;
        while (w > r && (w[-1] == '_' || (w[-1] >= 'a' && w[-1] <= 'z') || (w[-1] >= 'A' && w[-1] <= 'Z') ||
                         (w[-1] >= '0' && w[-1] <= '9')))
            w--;
        snprintf(rest_name, n, "%.*s", (int)(end - w), w);
        return true;
    }
    return false;
}

/* s for a C comment: control bytes as '?', a closing comment as "*\/"; malloc'd */
static char *comment_text(const char *s)
{
    StrBuf sb = {0};
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) sb_printf(&sb, "?");
        else if (p[0] == '*' && p[1] == '/') sb_printf(&sb, "*\\");
        else sb_printf(&sb, "%c", *p);
    }
    return sb.data ? sb.data : strdup("");
}

/* "T **x" -> "x" */
static const char *last_word(const char *s)
{
    const char *w = s + strlen(s);
    while (w > s && w[-1] != '*' && w[-1] != ' ') w--;
    return w;
}

int cli_add_embedded(StrBuf *c_src, StrBuf *h_src, const char *weights, StrBuf *asm_src)
{
    char prefix[256], first[256], rest[256], rest_name[256];
    if (!h_src->data || !parse_create(h_src->data, prefix, first, rest, rest_name, sizeof prefix)) {
        fprintf(stderr, "nnc: internal error: --embed-weights: no PREFIX_create in the generated header\n");
        return 1;
    }
    const char *x = last_word(first);
    char *w = abs_path(weights);
    for (const char *p = w; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            fprintf(stderr, "nnc: --embed-weights: the path '%s' has a control character, which .incbin cannot name "
                    "(rename the file)\n", weights);
            free(w);
            return 1;
        }
    char *wc = comment_text(w);
    sb_printf(c_src, "\n/* ---- nnc --embed-weights %s ---- */\n"
                     "extern const unsigned char %s_weights_blob[], %s_weights_blob_end[];\n\n"
                     "int %s_create_embedded(%s, %s)\n{\n"
                     "    return %s_create_from_memory(%s, %s_weights_blob,\n"
                     "        (size_t)(%s_weights_blob_end - %s_weights_blob), %s);\n}\n",
              wc, prefix, prefix, prefix, first, rest, prefix, x, prefix, prefix, prefix, rest_name);
    /* the declaration goes before the header's closing extern "C" (the
     * inference header's), else before its closing #endif (the training one's) */
    const char *tail = NULL;
    for (const char *p = strstr(h_src->data, "#ifdef __cplusplus\n}"); p; p = strstr(p + 1, "#ifdef __cplusplus\n}"))
        tail = p;
    for (const char *p = strstr(h_src->data, "\n#endif"); p && !tail; p = strstr(p + 1, "\n#endif"))
        if (!strstr(p + 1, "\n#endif")) tail = p + 1;
    if (!tail) {
        fprintf(stderr, "nnc: internal error: --embed-weights: the generated header has no closing #endif\n");
        free(w);
        free(wc);
        return 1;
    }
    StrBuf h = {0};
    sb_printf(&h, "%.*s", (int)(tail - h_src->data), h_src->data);
    sb_printf(&h, "/* %s_create with the weights linked into the program (nnc --embed-weights: the\n"
                  " * _weights.S beside the .c holds the bytes of %s,\n"
                  " * checked against the network when the code was generated). */\n"
                  "int %s_create_embedded(%s, %s);\n\n%s",
              prefix, wc, prefix, first, rest, tail);
    sb_free(h_src);
    *h_src = h;
    emit_asm(asm_src, prefix, w);
    free(w);
    free(wc);
    return 0;
}
