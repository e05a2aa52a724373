/* safetensors_json.c: the JSON reader (RFC 8259) of the safetensors loader,
 * part of safetensors_load.c, which #includes it where its reader goes (the
 * generated code gets one text: cmake/embed.cmake expands the include). It
 * validates the whole header and decodes strings into the header's pool; the
 * cursor, the pool and the error path are safetensors_load.c's. */
/* ---- JSON (RFC 8259) ---- */

/* Reports a syntax error at the cursor. */
static int nnc_st_syntax(nnc_st_json *J, const char *msg)
{
    return nnc_st_fail(J->err, J->errlen, J->path, "%s is not valid JSON at byte %llu: %s",
                       J->what, (unsigned long long)(J->base + (uint64_t)(J->p - J->start)), msg);
}

static void nnc_st_ws(nnc_st_json *J)
{
    while (J->p < J->end && (*J->p == ' ' || *J->p == '\t' || *J->p == '\n' || *J->p == '\r'))
        J->p++;
}

/* Consumes the character c (after whitespace), or fails with "expected 'c'". */
static int nnc_st_expect(nnc_st_json *J, char c)
{
    char msg[32];
    nnc_st_ws(J);
    if (J->p < J->end && *J->p == (unsigned char)c) { J->p++; return 0; }
    snprintf(msg, sizeof msg, J->p < J->end ? "expected '%c'" : "expected '%c', found the end", c);
    return nnc_st_syntax(J, msg);
}

/* Reads 4 hex digits of a \u escape. */
static int nnc_st_hex4(nnc_st_json *J, uint32_t *out)
{
    int i;
    *out = 0;
    if (J->end - J->p < 4) return nnc_st_syntax(J, "\\u needs 4 hex digits");
    for (i = 0; i < 4; i++) {
        unsigned c = J->p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return nnc_st_syntax(J, "\\u needs 4 hex digits");
        *out = *out << 4 | d;
    }
    J->p += 4;
    return 0;
}

/* Decodes \uXXXX (and a following low surrogate) at the cursor, just past the 'u',
 * appending its UTF-8 encoding to the pool. */
static int nnc_st_unicode_escape(nnc_st_json *J)
{
    uint32_t cp = 0, lo = 0;
    char *o = J->pool + J->pool_len;
    if (nnc_st_hex4(J, &cp)) return -1;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return nnc_st_syntax(J, "lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (J->end - J->p < 2 || J->p[0] != '\\' || J->p[1] != 'u')
            return nnc_st_syntax(J, "high surrogate \\u escape without its low half");
        J->p += 2;
        if (nnc_st_hex4(J, &lo)) return -1;
        if (lo < 0xDC00 || lo > 0xDFFF) return nnc_st_syntax(J, "high surrogate \\u escape without its low half");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp < 0x80) { o[0] = (char)cp; J->pool_len += 1; }
    else if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); J->pool_len += 2; }
    else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); J->pool_len += 3;
    } else {
        o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); J->pool_len += 4;
    }
    return 0;
}

/* Decodes the escape after a backslash. */
static int nnc_st_escape(nnc_st_json *J)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k;
    if (J->p >= J->end) return nnc_st_syntax(J, "unterminated string");
    if (*J->p == 'u') { J->p++; return nnc_st_unicode_escape(J); }
    k = *J->p ? strchr(from, *J->p) : NULL;
    if (!k) return nnc_st_syntax(J, "invalid escape in string (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
    J->pool[J->pool_len++] = to[k - from];
    J->p++;
    return 0;
}

/* string := '"' chars '"'. Decodes into the pool (which always has room: a decoded
 * string plus its NUL is shorter than its source) and returns it in *out. */
static int nnc_st_string(nnc_st_json *J, const char **out, size_t *len)
{
    size_t first;
    nnc_st_ws(J);
    if (J->p >= J->end || *J->p != '"') return nnc_st_syntax(J, J->p < J->end ? "expected a string" : "expected a string, found the end");
    J->p++;
    first = J->pool_len;
    for (;;) {
        unsigned c;
        size_t n;
        if (J->p >= J->end) return nnc_st_syntax(J, "unterminated string");
        c = *J->p;
        if (c == '"') break;
        if (c == '\\') { J->p++; if (nnc_st_escape(J)) return -1; continue; }
        if (c < 0x20) return nnc_st_syntax(J, "control character in a string (it must be escaped)");
        n = nnc_st_utf8_len(J->p, J->end);
        if (n == 0) return nnc_st_syntax(J, "invalid UTF-8 in a string");
        memcpy(J->pool + J->pool_len, J->p, n);
        J->pool_len += n;
        J->p += n;
    }
    J->p++;
    J->pool[J->pool_len++] = '\0';
    if (out) *out = J->pool + first;
    if (len) *len = J->pool_len - first - 1;
    return 0;
}

/* number := '-'? int frac? exp?. *is_uint tells whether it is a plain non-negative
 * integer that fits in 63 bits; its value is then in *val. */
static int nnc_st_number(nnc_st_json *J, uint64_t *val, int *is_uint)
{
    *val = 0;
    *is_uint = 1;
    nnc_st_ws(J);
    if (J->p < J->end && *J->p == '-') { J->p++; *is_uint = 0; }
    if (J->p >= J->end || *J->p < '0' || *J->p > '9') return nnc_st_syntax(J, "expected a number");
    if (*J->p == '0') J->p++;
    else for (; J->p < J->end && *J->p >= '0' && *J->p <= '9'; J->p++) {
        if (*val > (UINT64_C(1) << 63) / 10) *is_uint = 0;
        else *val = *val * 10 + (uint64_t)(*J->p - '0');
    }
    if (*val >= UINT64_C(1) << 63) *is_uint = 0;
    if (J->p < J->end && *J->p == '.') {
        J->p++;
        *is_uint = 0;
        if (J->p >= J->end || *J->p < '0' || *J->p > '9') return nnc_st_syntax(J, "expected a digit after '.'");
        while (J->p < J->end && *J->p >= '0' && *J->p <= '9') J->p++;
    }
    if (J->p < J->end && (*J->p == 'e' || *J->p == 'E')) {
        J->p++;
        *is_uint = 0;
        if (J->p < J->end && (*J->p == '+' || *J->p == '-')) J->p++;
        if (J->p >= J->end || *J->p < '0' || *J->p > '9') return nnc_st_syntax(J, "expected a digit in the exponent");
        while (J->p < J->end && *J->p >= '0' && *J->p <= '9') J->p++;
    }
    return 0;
}

static int nnc_st_value(nnc_st_json *J, int depth);

/* Reads ',' or the closing bracket after an element; *more tells which. */
static int nnc_st_next(nnc_st_json *J, char close, int *more)
{
    char msg[40];
    *more = 0;
    nnc_st_ws(J);
    if (J->p < J->end && *J->p == ',') { J->p++; *more = 1; return 0; }
    if (J->p < J->end && *J->p == (unsigned char)close) { J->p++; *more = 0; return 0; }
    snprintf(msg, sizeof msg, "expected ',' or '%c'%s", close, J->p < J->end ? "" : ", found the end");
    return nnc_st_syntax(J, msg);
}

/* Tells whether the container just opened is empty, consuming its closing bracket. */
static int nnc_st_empty(nnc_st_json *J, char close)
{
    nnc_st_ws(J);
    if (J->p < J->end && *J->p == (unsigned char)close) { J->p++; return 1; }
    return 0;
}

/* object := '{' (string ':' value (',' string ':' value)*)? '}'   (after the '{') */
static int nnc_st_object_rest(nnc_st_json *J, int depth)
{
    int more = !nnc_st_empty(J, '}');
    while (more) {
        if (nnc_st_string(J, NULL, NULL) || nnc_st_expect(J, ':') || nnc_st_value(J, depth + 1)) return -1;
        if (nnc_st_next(J, '}', &more)) return -1;
    }
    return 0;
}

/* array := '[' (value (',' value)*)? ']'   (after the '[') */
static int nnc_st_array_rest(nnc_st_json *J, int depth)
{
    int more = !nnc_st_empty(J, ']');
    while (more) {
        if (nnc_st_value(J, depth + 1) || nnc_st_next(J, ']', &more)) return -1;
    }
    return 0;
}

/* value := object | array | string | number | true | false | null. Checked and
 * skipped: used for values nnc does not need (unknown keys of a tensor entry). */
static int nnc_st_value(nnc_st_json *J, int depth)
{
    static const char *const words[] = {"true", "false", "null"};
    uint64_t v = 0;
    int i, u = 0;
    nnc_st_ws(J);
    if (depth > NNC_ST_MAX_DEPTH) return nnc_st_syntax(J, "nested deeper than 64 levels");
    if (J->p >= J->end) return nnc_st_syntax(J, "expected a value, found the end");
    if (*J->p == '{') { J->p++; return nnc_st_object_rest(J, depth); }
    if (*J->p == '[') { J->p++; return nnc_st_array_rest(J, depth); }
    if (*J->p == '"') return nnc_st_string(J, NULL, NULL);
    if (*J->p == '-' || (*J->p >= '0' && *J->p <= '9')) return nnc_st_number(J, &v, &u);
    for (i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(J->end - J->p) >= n && memcmp(J->p, words[i], n) == 0) { J->p += n; return 0; }
    }
    return nnc_st_syntax(J, "expected a value");
}

