/* test_frontend.c: the lexer, the parser and the elaborator.
 *
 * Parser tests print the AST as an S-expression and compare text, so a test
 * reads like the tree it expects ("(call f a b)"). Elaboration tests compile
 * small programs with fe_compile_text and look at the graph: shapes, op kinds,
 * parameter names. Every graph that compiles is also run through ir_verify.
 * Expected shapes of convolutions and poolings were computed with PyTorch
 * (torch.nn.Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d) on the same
 * arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/ast.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

/* ---- helpers: compiling ---- */

static void verify_or_fail(const IrGraph *g)
{
    char err[512];
    if (!ir_verify(g, err, sizeof err)) fail_msg("ir_verify: %s", err);
}

/* Compiles src (as "test.net") and returns the graph, failing the test on any diagnostic. */
static IrGraph *compile_ok_opt(const char *src, const FeOptions *opt)
{
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    IrGraph *g = fe_compile_text("test.net", src, strlen(src), opt, &d);
    if (!g) fprintf(stderr, "unexpected diagnostics for\n%s\n%s", src, d.out.data ? d.out.data : "(none)\n");
    assert_non_null(g);
    assert_int_equal(d.errors, 0);
    diag_free(&d);
    arena_free(&a);
    verify_or_fail(g);
    return g;
}

static IrGraph *compile_ok(const char *src) { return compile_ok_opt(src, NULL); }

/* Compiles src expecting failure; returns the diagnostics (free them). */
static char *compile_fail_opt(const char *src, const FeOptions *opt)
{
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    IrGraph *g = fe_compile_text("test.net", src, strlen(src), opt, &d);
    if (g) fprintf(stderr, "compiled, but should not have:\n%s\n", src);
    assert_null(g);
    assert_true(d.errors > 0);
    assert_non_null(d.out.data);
    char *out = strdup(d.out.data);
    diag_free(&d);
    arena_free(&a);
    return out;
}

static char *compile_fail(const char *src) { return compile_fail_opt(src, NULL); }

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part)) fail_msg("expected to find \"%s\" in:\n%s", part, text);
}

static const IrShape *output_shape(const IrGraph *g, int i)
{
    assert_true(i < g->n_outputs);
    return &g->values[g->outputs[i].value].shape;
}

/* Compares a shape with its printed form, "[3, 8, 8]". */
static void assert_shape(const IrShape *s, const char *want)
{
    char buf[96];
    ir_shape_str(s, buf, sizeof buf);
    if (strcmp(buf, want) != 0) fail_msg("shape %s, expected %s", buf, want);
}

static const IrValue *find_param(const IrGraph *g, const char *name)
{
    for (int32_t i = 0; i < g->n_params; i++)
        if (strcmp(g->values[g->params[i]].name, name) == 0) return &g->values[g->params[i]];
    return NULL;
}

static int count_ops(const IrGraph *g, OpKind op)
{
    int n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

/* The value of an integer expression, read back through linear's width. */
static int64_t eval_int(const char *prelude, const char *expr)
{
    char src[2048];
    snprintf(src, sizeof src,
             "network t {\n    input x: [1]\n    %s\n    output y = x |> linear(100000 + (%s))\n}\n", prelude, expr);
    IrGraph *g = compile_ok(src);
    int64_t v = output_shape(g, 0)->dim[0] - 100000;
    ir_free(g);
    return v;
}

/* The value of a boolean expression, read back through which branch ran. */
static bool eval_bool(const char *prelude, const char *expr)
{
    char src[2048];
    snprintf(src, sizeof src,
             "network t {\n    input x: [1]\n    %s\n    w = 2\n    if %s { w = 1 }\n    output y = x |> linear(w)\n}\n",
             prelude, expr);
    IrGraph *g = compile_ok(src);
    bool v = output_shape(g, 0)->dim[0] == 1;
    ir_free(g);
    return v;
}

/* ---- helpers: the syntax tree as text ---- */

static void sexpr(const Expr *e, StrBuf *sb);

static void sexpr_list(const ExprList *l, StrBuf *sb)
{
    for (; l; l = l->next) {
        sb_append(sb, " ");
        sexpr(l->e, sb);
    }
}

static void sexpr(const Expr *e, StrBuf *sb)
{
    static const char *bin[] = {"+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or"};
    switch (e->kind) {
    case EX_INT: sb_printf(sb, "%lld", (long long)e->u.i); break;
    case EX_FLOAT: sb_printf(sb, "%g", e->u.f); break;
    case EX_STRING: sb_printf(sb, "\"%s\"", e->u.s); break;
    case EX_BOOL: sb_append(sb, e->u.b ? "true" : "false"); break;
    case EX_NAME: sb_append(sb, e->u.s); break;
    case EX_TUPLE: sb_append(sb, "(tuple"); sexpr_list(e->u.items, sb); sb_append(sb, ")"); break;
    case EX_LIST: sb_append(sb, "(list"); sexpr_list(e->u.items, sb); sb_append(sb, ")"); break;
    case EX_BINARY:
        sb_printf(sb, "(%s ", bin[e->u.bin.op]);
        sexpr(e->u.bin.l, sb);
        sb_append(sb, " ");
        sexpr(e->u.bin.r, sb);
        sb_append(sb, ")");
        break;
    case EX_UNARY:
        sb_append(sb, e->u.un.op == UN_NEG ? "(neg " : "(not ");
        sexpr(e->u.un.e, sb);
        sb_append(sb, ")");
        break;
    case EX_CALL:
        sb_append(sb, "(call ");
        sexpr(e->u.call.fn, sb);
        for (const Arg *a = e->u.call.args; a; a = a->next) {
            sb_append(sb, " ");
            if (a->name) sb_printf(sb, "%s:", a->name);
            sexpr(a->value, sb);
        }
        for (const AsSeg *a = e->u.call.as; a; a = a->next) {
            sb_append(sb, a == e->u.call.as ? " as " : ".");
            if (a->text) sb_append(sb, a->text);
            else sexpr(a->expr, sb);
        }
        sb_append(sb, ")");
        break;
    case EX_INDEX:
        sb_append(sb, "([] ");
        sexpr(e->u.index.seq, sb);
        sb_append(sb, " ");
        sexpr(e->u.index.index, sb);
        sb_append(sb, ")");
        break;
    case EX_FIELD:
        sb_append(sb, "(. ");
        sexpr(e->u.field.e, sb);
        sb_printf(sb, " %s)", e->u.field.field);
        break;
    }
}

typedef struct {
    Arena arena;
    Diag d;
    Decl *decls;
    bool ok;
} Parsed;

static void parse_text(Parsed *p, const char *text)
{
    memset(p, 0, sizeof *p);
    diag_init(&p->d, &p->arena);
    const SrcFile *f = diag_add_file(&p->d, "test.net", text, strlen(text));
    p->ok = fe_parse(&p->d, f, &p->decls);
}

static void parsed_free(Parsed *p)
{
    diag_free(&p->d);
    arena_free(&p->arena);
}

/* Parses "network t { k = EXPR }" and checks the tree of EXPR. */
static void check_expr(const char *expr, const char *want)
{
    char src[1024];
    snprintf(src, sizeof src, "network t {\n    k = %s\n}\n", expr);
    Parsed p;
    parse_text(&p, src);
    if (!p.ok) fail_msg("parse error in '%s':\n%s", expr, p.d.out.data);
    const Stmt *s = p.decls->body;
    assert_int_equal(s->kind, ST_ASSIGN);
    StrBuf sb = {0};
    sexpr(s->e, &sb);
    if (strcmp(sb.data, want) != 0) fail_msg("'%s' parsed as %s, expected %s", expr, sb.data, want);
    sb_free(&sb);
    parsed_free(&p);
}

/* Two expressions parse to the same tree. */
static void check_same(const char *a, const char *b)
{
    char src[1024];
    snprintf(src, sizeof src, "network t {\n    a = %s\n    b = %s\n}\n", a, b);
    Parsed p;
    parse_text(&p, src);
    if (!p.ok) fail_msg("parse error:\n%s", p.d.out.data);
    StrBuf sa = {0}, sb = {0};
    sexpr(p.decls->body->e, &sa);
    sexpr(p.decls->body->next->e, &sb);
    if (strcmp(sa.data, sb.data) != 0) fail_msg("'%s' is %s but '%s' is %s", a, sa.data, b, sb.data);
    sb_free(&sa);
    sb_free(&sb);
    parsed_free(&p);
}

static void check_syntax_error(const char *src, const char *part)
{
    Parsed p;
    parse_text(&p, src);
    assert_false(p.ok);
    assert_non_null(p.d.out.data);
    assert_contains(p.d.out.data, part);
    parsed_free(&p);
}

/* ---- lexer and parser ---- */

static void test_statement_kinds(void **state)
{
    (void)state;
    const char *src =
        "import \"lib.net\"\n"
        "block b(x, c, k = 3,) {\n"
        "    y = x\n"
        "    if c > 1 { y = relu(y) } else if c < 0 { y = x } else { repeat 2 { y = y } }\n"
        "    for i in [1, 2] { y = y }\n"
        "    for a, s in [(1, 2)] { y = y }\n"
        "    return y\n"
        "}\n"
        "network n(classes = 10) {\n"
        "    input image: [3, 8, 8]\n"
        "    output logits = image\n"
        "}\n"
        "network bare {\n"
        "}\n"
        "train n {\n"
        "    batch = 64\n"
        "    optimizer = sgd(lr: 0.05)\n"
        "}\n";
    Parsed p;
    parse_text(&p, src);
    if (!p.ok) fail_msg("%s", p.d.out.data);
    const Decl *d = p.decls;
    assert_int_equal(d->kind, DECL_IMPORT);
    assert_string_equal(d->name, "lib.net");
    d = d->next;
    assert_int_equal(d->kind, DECL_BLOCK);
    assert_string_equal(d->name, "b");
    assert_string_equal(d->params->name, "x");
    assert_string_equal(d->params->next->next->name, "k");
    assert_null(d->params->next->next->next);  /* trailing comma */
    assert_non_null(d->params->next->next->def);
    const Stmt *s = d->body;
    StmtKind kinds[] = {ST_ASSIGN, ST_IF, ST_FOR, ST_FOR, ST_RETURN};
    for (size_t i = 0; i < NNC_COUNT(kinds); i++, s = s->next) {
        assert_non_null(s);
        assert_int_equal(s->kind, kinds[i]);
    }
    assert_null(s);
    const Stmt *ifs = d->body->next;
    assert_non_null(ifs->orelse);
    assert_int_equal(ifs->orelse->kind, ST_IF);         /* else if */
    assert_int_equal(ifs->orelse->orelse->kind, ST_REPEAT);  /* else { repeat } */
    const Stmt *f2 = ifs->next->next;
    assert_string_equal(f2->vars->name, "a");
    assert_string_equal(f2->vars->next->name, "s");
    d = d->next;
    assert_int_equal(d->kind, DECL_NETWORK);
    assert_string_equal(d->params->name, "classes");
    assert_int_equal(d->body->kind, ST_INPUT);
    assert_string_equal(d->body->name, "image");
    assert_int_equal(d->body->next->kind, ST_OUTPUT);
    d = d->next;
    assert_int_equal(d->kind, DECL_NETWORK);
    assert_null(d->params);
    assert_null(d->body);
    d = d->next;
    assert_int_equal(d->kind, DECL_TRAIN);
    assert_string_equal(d->settings->key, "batch");
    assert_string_equal(d->settings->next->key, "optimizer");
    assert_null(d->next);
    parsed_free(&p);
}

static void test_pipe_desugaring(void **state)
{
    (void)state;
    check_same("a |> f(b)", "f(a, b)");
    check_same("a |> f", "f(a)");
    check_same("a |> f |> g(1, k: 2)", "g(f(a), 1, k: 2)");
    check_same("a |> f() |> g", "g(f(a))");
    check_same("x + y |> relu", "relu(x + y)");
    check_same("a |> conv(8, 3) as c1", "conv(a, 8, 3) as c1");
    check_expr("a |> f(b)", "(call f a b)");
    check_expr("a |> f", "(call f a)");
    check_expr("a |> relu as r", "(call relu a as r)");
}

static void test_precedence(void **state)
{
    (void)state;
    check_expr("1 + 2 * 3", "(+ 1 (* 2 3))");
    check_expr("1 * 2 + 3", "(+ (* 1 2) 3)");
    check_expr("1 - 2 - 3", "(- (- 1 2) 3)");
    check_expr("8 / 2 % 3", "(% (/ 8 2) 3)");
    check_expr("-a * b", "(* (neg a) b)");
    check_expr("not a and b", "(and (not a) b)");
    check_expr("a or b and c", "(or a (and b c))");
    check_expr("not a == b", "(not (== a b))");
    check_expr("a + 1 < b * 2", "(< (+ a 1) (* b 2))");
    check_expr("a != 1 or b >= 2", "(or (!= a 1) (>= b 2))");
    check_expr("x.channels * 2", "(* (. x channels) 2)");
    check_expr("f(x).shape", "(. (call f x) shape)");
    /* and the elaborator agrees */
    assert_int_equal(eval_int("", "1 + 2 * 3"), 7);
    assert_int_equal(eval_int("", "(1 + 2) * 3"), 9);
    assert_int_equal(eval_int("", "10 - 4 - 3"), 3);
    assert_false(eval_bool("a = true\n    b = false", "not a and b"));
    assert_true(eval_bool("a = false\n    b = true", "not a and b"));
    assert_true(eval_bool("a = true\n    b = false", "not (a and b)"));
    assert_true(eval_bool("", "1 + 1 == 2 and 3 > 2"));
    assert_true(eval_bool("", "false or 2 <= 2"));
}

static void test_tuples_and_parens(void **state)
{
    (void)state;
    check_expr("(1)", "1");
    check_expr("((a))", "a");
    check_expr("(1, 2)", "(tuple 1 2)");
    check_expr("(1,)", "(tuple 1)");
    check_expr("()", "(tuple)");
    check_expr("[]", "(list)");
    check_expr("[(1, 2), (3, 4)]", "(list (tuple 1 2) (tuple 3 4))");
    check_expr("(1 + 2) * 3", "(* (+ 1 2) 3)");
}

static void test_trailing_commas(void **state)
{
    (void)state;
    check_expr("f(a, b,)", "(call f a b)");
    check_expr("f(a, k: 1,)", "(call f a k:1)");
    check_expr("[1, 2,]", "(list 1 2)");
    check_expr("(1, 2,)", "(tuple 1 2)");
    IrGraph *g = compile_ok("block b(x, c,) { return x |> conv(c, 3,) }\n"
                            "network t { input x: [3, 8, 8,] output y = b(x, 4,) }\n");
    assert_shape(output_shape(g, 0), "[4, 6, 6]");
    ir_free(g);
}

static void test_comments_and_newlines(void **state)
{
    (void)state;
    /* no separators, comments anywhere, a pipeline over several lines */
    IrGraph *g = compile_ok("# a network\n"
                            "network t { input x: [3, 8, 8] # the input\n"
                            "    y = x\n"
                            "        |> conv(4, 3)   # first\n"
                            "        |> relu\n"
                            "    output z = y output w = relu(\n"
                            "        y)\n"
                            "}   # end\n");
    assert_int_equal(g->n_outputs, 2);
    assert_shape(output_shape(g, 0), "[4, 6, 6]");
    ir_free(g);
    /* the same program on one line */
    g = compile_ok("network t { input x: [3, 8, 8] y = x |> conv(4, 3) |> relu output z = y output w = relu(y) }");
    assert_int_equal(g->n_nodes, 3);
    ir_free(g);
    /* CRLF line ends */
    g = compile_ok("network t {\r\n    input x: [4]\r\n    output y = relu(x)\r\n}\r\n");
    ir_free(g);
}

static void test_literals(void **state)
{
    (void)state;
    check_expr("1.5", "1.5");
    check_expr(".5", "0.5");
    check_expr("1e-4", "0.0001");
    check_expr("2.5e3", "2500");
    check_expr("true", "true");
    check_expr("\"s\"", "\"s\"");
    check_expr("9007199254740992", "9007199254740992");
    check_syntax_error("network t { k = 9007199254740993 }", "too large");
    check_syntax_error("network t { k = 1e400 }", "out of range");
    check_syntax_error("network t { k = 12ab }", "malformed number '12ab'");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    check_syntax_error("network t { k = (1 + 2 }", "test.net:1:24: error: unexpected '}'");
    check_syntax_error("network t { k = f(1 2) }", "expected ',' or ')'");
    check_syntax_error("network t {\n k = 1\n", "unexpected end of file, expected a statement or '}'");
    check_syntax_error("network t {\n k = 1\n", "note: to match this '{'");
    check_syntax_error("network t { k = 1 } }", "expected a declaration");
    check_syntax_error("network t { in = 1 }", "unexpected 'in'");
    check_syntax_error("network t { k = f(a=1) }", "keyword arguments are written 'name: value'");
    check_syntax_error("network t { k = a < b < c }", "comparisons do not chain");
    check_syntax_error("network t { k = @ }", "unexpected character '@'");
    check_syntax_error("network t { k = \"abc }", "unterminated string");
    check_syntax_error("network t { k = a !b }", "unexpected '!'");
    /* a NUL byte is an error, not the end of the text */
    Parsed p;
    memset(&p, 0, sizeof p);
    diag_init(&p.d, &p.arena);
    const SrcFile *f = diag_add_file(&p.d, "test.net", "network t { k = \0 }", 19);
    assert_false(fe_parse(&p.d, f, &p.decls));
    assert_contains(p.d.out.data, "unexpected byte 0x00");
    parsed_free(&p);
}

/* ---- elaboration ---- */

static void test_block_defaults_and_keywords(void **state)
{
    (void)state;
    const char *blk = "block cb(x, c, k = 3, stride = 1, pad = 0) { return x |> conv(c, k, stride: stride, pad: pad) }\n";
    char src[1024];
    struct { const char *call; int c, h, w; } cases[] = {
        {"cb(x, 8)", 8, 14, 14},
        {"cb(x, 8, 5)", 8, 12, 12},
        {"cb(x, 8, stride: 2)", 8, 7, 7},
        {"cb(x, c: 4, k: 1, pad: 1)", 4, 18, 18},
        {"x |> cb(6, pad: 1, stride: 2)", 6, 8, 8},
    };
    for (size_t i = 0; i < NNC_COUNT(cases); i++) {
        snprintf(src, sizeof src, "%snetwork t { input x: [3, 16, 16] output y = %s }\n", blk, cases[i].call);
        IrGraph *g = compile_ok(src);
        char want[64];
        snprintf(want, sizeof want, "[%d, %d, %d]", cases[i].c, cases[i].h, cases[i].w);
        assert_shape(output_shape(g, 0), want);
        ir_free(g);
    }
    snprintf(src, sizeof src, "%snetwork t { input x: [3, 16, 16] output y = cb(x) }\n", blk);
    char *err = compile_fail(src);
    assert_contains(err, "block 'cb' needs the argument 'c'");
    free(err);
    snprintf(src, sizeof src, "%snetwork t { input x: [3, 16, 16] output y = cb(x, 8, strides: 2) }\n", blk);
    err = compile_fail(src);
    assert_contains(err, "block 'cb' has no parameter 'strides'; did you mean 'stride'?");
    free(err);
}

static void test_functions_as_values(void **state)
{
    (void)state;
    IrGraph *g = compile_ok("block unit(x, act = relu) { return x |> conv(4, 1) |> act }\n"
                            "network t {\n"
                            "    input x: [3, 8, 8]\n"
                            "    act = sigmoid\n"
                            "    a = x |> unit\n"
                            "    b = x |> unit(act: act)\n"
                            "    c = x |> unit(act: tanh)\n"
                            "    f = unit\n"
                            "    d = f(x, identity)\n"
                            "    output y = concat(a, b, c, d)\n"
                            "}\n");
    assert_int_equal(count_ops(g, OP_RELU), 1);
    assert_int_equal(count_ops(g, OP_SIGMOID), 1);
    assert_int_equal(count_ops(g, OP_TANH), 1);
    assert_int_equal(count_ops(g, OP_IDENTITY), 1);
    assert_shape(output_shape(g, 0), "[16, 8, 8]");
    ir_free(g);
}

static void test_conditions(void **state)
{
    (void)state;
    const char *tmpl = "network t(k = %d) {\n"
                       "    input x: [1]\n"
                       "    if k < 0 { w = 1 } else if k == 0 { w = 2 } else if k < 10 { w = 3 } else { w = 4 }\n"
                       "    output y = x |> linear(w)\n"
                       "}\n";
    int ks[] = {-5, 0, 7, 10}, want[] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++) {
        char src[512];
        snprintf(src, sizeof src, tmpl, ks[i]);
        IrGraph *g = compile_ok(src);
        assert_int_equal(output_shape(g, 0)->dim[0], want[i]);
        ir_free(g);
    }
    /* short circuit: the right side is not evaluated */
    assert_false(eval_bool("", "false and undefined_name"));
    assert_true(eval_bool("", "true or 1 / 0 == 1"));
}

static void test_loops(void **state)
{
    (void)state;
    IrGraph *g = compile_ok("network t {\n"
                            "    input x: [3, 32, 32]\n"
                            "    for c, s in [(8, 1), (16, 2), (32, 2)] { x = x |> conv(c, 3, stride: s, pad: 1) }\n"
                            "    repeat 3 { x = relu(x) }\n"
                            "    repeat 0 { x = sigmoid(x) }\n"
                            "    n = 0\n"
                            "    for i in range(4) { n = n + i }\n"        /* 0+1+2+3 */
                            "    for i in range(1, 7, 2) { n = n + i }\n"  /* 1+3+5 */
                            "    for i in range(3, 0, -1) { n = n + i }\n" /* 3+2+1 */
                            "    for i in (1, 2) { n = n + i }\n"          /* tuples walk too */
                            "    for i in [] { n = n + 100 }\n"
                            "    output y = x |> flatten |> linear(n + len(range(5)))\n"
                            "}\n");
    assert_int_equal(count_ops(g, OP_CONV2D), 3);
    assert_int_equal(count_ops(g, OP_RELU), 3);
    assert_int_equal(count_ops(g, OP_SIGMOID), 0);
    assert_shape(&g->values[g->nodes[2].out].shape, "[32, 8, 8]");
    assert_shape(output_shape(g, 0), "[29]");  /* 6 + 9 + 6 + 3 + len(range(5)) */
    ir_free(g);
}

static void test_shape_queries(void **state)
{
    (void)state;
    IrGraph *g = compile_ok("network t {\n"
                            "    input x: [3, 10, 12]\n"
                            "    v = flatten(x)\n"
                            "    s = x.shape\n"
                            "    for a, b, c in [s] { n = a * 10000 + b * 100 + c }\n"
                            "    output y = v |> linear(n + x.channels + x.height + x.width + v.features)\n"
                            "}\n");
    assert_int_equal(output_shape(g, 0)->dim[0], 31012 + 3 + 10 + 12 + 360);
    ir_free(g);
}

static void test_integer_arithmetic(void **state)
{
    (void)state;
    assert_int_equal(eval_int("", "7 / 2"), 3);
    assert_int_equal(eval_int("", "-7 / 2"), -4);
    assert_int_equal(eval_int("", "7 / -2"), -4);
    assert_int_equal(eval_int("", "-7 / -2"), 3);
    assert_int_equal(eval_int("", "6 / 3"), 2);
    assert_int_equal(eval_int("", "7 % 3"), 1);
    assert_int_equal(eval_int("", "-7 % 3"), 2);
    assert_int_equal(eval_int("", "7 % -3"), -2);
    assert_int_equal(eval_int("", "min(3, 5) + max(3, 5)"), 8);
    assert_true(eval_bool("", "7.0 / 2 == 3.5"));
    assert_true(eval_bool("", "-7.5 % 2 == 0.5"));
    assert_true(eval_bool("", "1 < 1.5"));
    char *err = compile_fail("network t { input x: [1] k = 9007199254740992 * 9007199254740992 output y = relu(x) }");
    assert_contains(err, "integer overflow");
    free(err);
    err = compile_fail("network t { input x: [1] k = 1 / 0 output y = relu(x) }");
    assert_contains(err, "division by zero");
    free(err);
}

static void test_parameter_names(void **state)
{
    (void)state;
    const char *src =
        "block basic(x, c, stride = 1) {\n"
        "    y = x |> conv(c, 3, stride: stride, pad: 1, bias: false) |> batchnorm |> relu\n"
        "    y = y |> conv(c, 3, pad: 1, bias: false) |> batchnorm\n"
        "    if stride != 1 or x.channels != c { x = x |> conv(c, 1, stride: stride, bias: false) as down }\n"
        "    return relu(x + y)\n"
        "}\n"
        "block stage(x, c) { return x |> basic(c, 2) |> basic(c) }\n"
        "network t {\n"
        "    input image: [3, 32, 32]\n"
        "    x = image |> conv(16, 3, pad: 1) |> conv(16, 3, pad: 1)\n"
        "    for c, s in [(16, 1), (32, 2)] { x = x |> basic(c, s) }\n"
        "    x = x |> stage(64) as layer3\n"
        "    output logits = x |> global_avgpool |> flatten |> linear(10) as fc\n"
        "}\n";
    IrGraph *g = compile_ok(src);
    const char *present[] = {
        "conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias",
        "basic0.conv0.weight", "basic0.batchnorm0.weight", "basic0.batchnorm0.running_var",
        "basic0.conv1.weight", "basic0.batchnorm1.bias",
        "basic1.conv0.weight", "basic1.conv1.weight", "basic1.down.weight",
        "layer3.basic0.conv0.weight", "layer3.basic0.down.weight", "layer3.basic1.conv1.weight",
        "fc.weight", "fc.bias",
    };
    for (size_t i = 0; i < NNC_COUNT(present); i++)
        if (!find_param(g, present[i])) fail_msg("no parameter '%s'", present[i]);
    const char *absent[] = {"basic0.down.weight", "basic0.conv0.bias", "layer3.basic1.down.weight", "linear0.weight"};
    for (size_t i = 0; i < NNC_COUNT(absent); i++)
        if (find_param(g, absent[i])) fail_msg("unexpected parameter '%s'", absent[i]);
    assert_shape(&find_param(g, "basic1.down.weight")->shape, "[32, 16, 1, 1]");
    assert_int_equal(find_param(g, "fc.weight")->shape.dim[1], 64);
    /* the same text gives the same names, in the same order */
    IrGraph *g2 = compile_ok(src);
    assert_int_equal(g->n_params, g2->n_params);
    for (int32_t i = 0; i < g->n_params; i++)
        assert_string_equal(g->values[g->params[i]].name, g2->values[g2->params[i]].name);
    ir_free(g2);
    ir_free(g);
    /* names from loop iterations count on; an 'as' name repeated by a loop collides */
    g = compile_ok("network t { input x: [4] repeat 3 { x = x |> linear(4) } output y = x }");
    assert_non_null(find_param(g, "linear2.weight"));
    ir_free(g);
    char *err = compile_fail("network t { input x: [4] repeat 2 { x = x |> linear(4) as fc } output y = x }");
    assert_contains(err, "the layer name 'fc' is used twice");
    free(err);
    /* LeNet-5 from the model zoo: names as the PyTorch module has them */
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    g = fe_compile(NNC_SOURCE_DIR "/models/lenet5.net", NULL, &d);
    assert_non_null(g);
    verify_or_fail(g);
    const char *lenet[] = {"conv1.weight", "conv1.bias", "conv2.weight", "fc1.weight", "fc2.bias", "fc3.weight"};
    for (size_t i = 0; i < NNC_COUNT(lenet); i++) assert_non_null(find_param(g, lenet[i]));
    assert_shape(&find_param(g, "fc1.weight")->shape, "[120, 400]");
    assert_shape(output_shape(g, 0), "[10]");
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
}

/* `as` paths: dotted, numeric and computed segments, as torchvision's state_dict keys need. */
static void test_as_paths(void **state)
{
    (void)state;
    const char *src =
        "block bneck(x, c, stride) {\n"
        "    y = x |> conv(c, 3, stride: stride, pad: 1, bias: false) as conv1 |> batchnorm as bn1 |> relu\n"
        "    if stride != 1 or x.channels != c { x = x |> conv(c, 1, stride: stride, bias: false) as downsample.0 |> batchnorm as downsample.1 }\n"
        "    return relu(x + y)\n"
        "}\n"
        "network t {\n"
        "    input image: [3, 16, 16]\n"
        "    x = image\n"
        "    for k, c in [(1, 8), (2, 16)] {\n"
        "        for i in range(2) { x = x |> bneck(c, if_first(i, k)) as (\"layer\" + str(k)).(i) }\n"
        "    }\n"
        "    x = x |> adaptive_avgpool((3, 2)) |> flatten\n"
        "    for v in [4, \"M\"] { if v == \"M\" { x = x } }\n"
        "    output y = x |> dropout |> linear(10) as classifier.1\n"
        "}\n"
        "block if_first(i, k) { if i == 0 { return k } return 1 }\n";
    IrGraph *g = compile_ok(src);
    const char *present[] = {"layer1.0.conv1.weight", "layer1.1.bn1.running_var", "layer2.0.downsample.0.weight",
                             "layer2.0.downsample.1.bias", "layer2.1.conv1.weight", "classifier.1.weight"};
    for (size_t i = 0; i < NNC_COUNT(present); i++)
        if (!find_param(g, present[i])) fail_msg("no parameter '%s'", present[i]);
    assert_non_null(find_param(g, "layer1.0.downsample.0.weight"));
    assert_null(find_param(g, "layer1.1.downsample.0.weight"));
    assert_shape(&find_param(g, "classifier.1.weight")->shape, "[10, 96]");
    /* buffers are not learnable parameters: 2x(8*3*9 + 16) + ... counted as PyTorch does */
    assert_true(find_param(g, "layer1.0.bn1.running_mean")->buffer);
    assert_false(find_param(g, "layer1.0.bn1.weight")->buffer);
    int64_t learn = 0;
    for (int32_t i = 0; i < g->n_params; i++)
        if (!g->values[g->params[i]].buffer) learn += ir_shape_elems(&g->values[g->params[i]].shape);
    assert_int_equal(ir_count_params(g), learn);
    ir_free(g);
    char *err = compile_fail("network t { input x: [4] output y = x |> linear(4) as (1.5) }");
    assert_contains(err, "a computed layer name must be an integer >= 0 or a string");
    free(err);
    err = compile_fail("network t { input x: [4] output y = x |> linear(4) as (\"a.b\") }");
    assert_contains(err, "a computed layer name");
    free(err);
}

/* xs[i] on lists and tuples, and `as _`: a block call that keeps the caller's names. */
static void test_index_and_transparent_calls(void **state)
{
    (void)state;
    IrGraph *g = compile_ok(
        "block stem(x) { return x |> conv(4, 3, pad: 1, bias: false) as conv1 |> batchnorm as bn1 |> relu }\n"
        "block head(x, classes) { return x |> global_avgpool |> flatten |> linear(classes) as fc }\n"
        "network t {\n"
        "    input image: [3, 8, 8]\n"
        "    cfg = [(1, 4), (2, 8)]\n"
        "    x = image |> stem as _\n"
        "    x = x |> conv(cfg[-1][1], 3) as (\"layer\" + str(cfg[1][0]))\n"
        "    output logits = x |> head(10) as _\n"
        "}\n");
    const char *present[] = {"conv1.weight", "bn1.running_var", "layer2.weight", "fc.weight"};
    for (size_t i = 0; i < NNC_COUNT(present); i++)
        if (!find_param(g, present[i])) fail_msg("no parameter '%s'", present[i]);
    assert_shape(&find_param(g, "layer2.weight")->shape, "[8, 4, 3, 3]");
    assert_null(find_param(g, "stem0.conv1.weight"));
    ir_free(g);
    char *err = compile_fail("network t { input x: [4] xs = (1, 2) output y = x |> linear(xs[-3]) }");
    assert_contains(err, "index -3 is out of range for 2 elements");
    free(err);
}

/* Shapes computed by PyTorch for the same layer on the same input. */
static void test_shape_inference(void **state)
{
    (void)state;
    struct { const char *layer; int64_t in[3]; int64_t out[3]; } cases[] = {
        {"conv(16, 3)", {3, 32, 32}, {16, 30, 30}},
        {"conv(16, 3, stride: 2, pad: 1)", {3, 32, 32}, {16, 16, 16}},
        {"conv(8, 3, dilation: 2)", {3, 32, 32}, {8, 28, 28}},
        {"conv(8, (3, 5), stride: (1, 2), pad: (1, 0))", {3, 17, 17}, {8, 17, 7}},
        {"conv(12, 3, groups: 3, pad: 2, dilation: 2, stride: 3)", {6, 20, 23}, {12, 7, 8}},
        {"conv_transpose(8, 4, stride: 2, pad: 1)", {16, 8, 8}, {8, 16, 16}},
        {"conv_transpose(8, 3, stride: 2, pad: 1, output_pad: 1)", {16, 8, 8}, {8, 16, 16}},
        {"conv_transpose(4, 3, stride: 3, dilation: 2, groups: 2)", {16, 5, 7}, {4, 17, 23}},
        {"maxpool(2)", {3, 7, 7}, {3, 3, 3}},
        {"maxpool(2, ceil: true)", {3, 7, 7}, {3, 4, 4}},
        /* ceil mode drops a last window that would start in the right padding */
        {"maxpool(2, stride: 2, pad: 1, ceil: true)", {3, 5, 5}, {3, 3, 3}},
        {"maxpool(3, stride: 2, ceil: true)", {3, 6, 6}, {3, 3, 3}},
        {"maxpool(3, stride: 2, pad: 1)", {3, 112, 112}, {3, 56, 56}},
        {"maxpool(3, stride: 2, pad: 1, dilation: 2)", {3, 11, 11}, {3, 5, 5}},
        {"avgpool(3, stride: 2)", {3, 7, 7}, {3, 3, 3}},
        {"avgpool(2, stride: 3, pad: 1, ceil: true)", {3, 8, 8}, {3, 3, 3}},
        {"global_avgpool", {5, 7, 9}, {5, 1, 1}},
        {"batchnorm", {5, 7, 9}, {5, 7, 9}},
        {"lrn(5)", {5, 7, 9}, {5, 7, 9}},
        {"leaky_relu(slope: 0.2)", {5, 7, 9}, {5, 7, 9}},
        {"dropout(0.1)", {5, 7, 9}, {5, 7, 9}},
        {"softmax", {5, 7, 9}, {5, 7, 9}},
    };
    for (size_t i = 0; i < NNC_COUNT(cases); i++) {
        char src[512];
        snprintf(src, sizeof src, "network t { input x: [%lld, %lld, %lld] output y = x |> %s }",
                 (long long)cases[i].in[0], (long long)cases[i].in[1], (long long)cases[i].in[2], cases[i].layer);
        IrGraph *g = compile_ok(src);
        const IrShape *s = output_shape(g, 0);
        if (s->rank != 3 || s->dim[0] != cases[i].out[0] || s->dim[1] != cases[i].out[1] || s->dim[2] != cases[i].out[2]) {
            char buf[96];
            fail_msg("%s on [%lld, %lld, %lld] gave %s, PyTorch gives [%lld, %lld, %lld]", cases[i].layer,
                     (long long)cases[i].in[0], (long long)cases[i].in[1], (long long)cases[i].in[2],
                     ir_shape_str(s, buf, sizeof buf), (long long)cases[i].out[0], (long long)cases[i].out[1],
                     (long long)cases[i].out[2]);
        }
        ir_free(g);
    }
    /* weights of grouped and transposed convolutions, as PyTorch lays them out */
    IrGraph *g = compile_ok("network t { input x: [6, 8, 8] a = x |> conv(12, 3, groups: 3)\n"
                            "  b = x |> conv_transpose(4, 3, groups: 2, bias: false) output y = a output z = b }");
    assert_shape(&find_param(g, "conv0.weight")->shape, "[12, 2, 3, 3]");
    assert_shape(&find_param(g, "conv_transpose0.weight")->shape, "[6, 2, 3, 3]");
    assert_null(find_param(g, "conv_transpose0.bias"));
    ir_free(g);
    /* flatten, linear, concat */
    g = compile_ok("network t {\n"
                   "    input x: [5, 7, 9]\n"
                   "    input v: [20]\n"
                   "    a = x |> conv(3, 1)\n"
                   "    output c = concat(x, a, x)\n"
                   "    output f = flatten(x)\n"
                   "    output l = x |> flatten |> linear(11)\n"
                   "    output w = v |> linear(7, bias: false) |> batchnorm\n"
                   "    output g = x |> global_avgpool |> flatten\n"
                   "}\n");
    assert_shape(output_shape(g, 0), "[13, 7, 9]");
    assert_shape(output_shape(g, 1), "[315]");
    assert_shape(output_shape(g, 2), "[11]");
    assert_shape(&find_param(g, "linear0.weight")->shape, "[11, 315]");
    assert_shape(output_shape(g, 3), "[7]");
    assert_null(find_param(g, "linear1.bias"));
    assert_shape(output_shape(g, 4), "[5]");
    ir_free(g);
}

/* The built-ins come from the op table: every op with a DSL name is a
 * built-in (a block may not take its name), and every activation of
 * runtime/snippets/activations.h is one, taking `slope` (default 0.01) when its
 * row has one, with no list of them in the frontend. */
static void test_builtins_from_op_table(void **state)
{
    (void)state;
    int acts = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        const char *dsl = ir_ops[op].dsl;
        char src[512];
        if (!dsl) continue;
        snprintf(src, sizeof src, "block %s(x) { return x }\nnetwork t { input x: [4] output y = x }\n", dsl);
        char *out = compile_fail(src);
        char want[128];
        snprintf(want, sizeof want, "'%s' is a built-in operation", dsl);
        assert_contains(out, want);
        free(out);
        if (ir_ops[op].act == ACT_NONE) continue;
        acts++;
        bool slope = ir_act_has_slope(ir_ops[op].act);
        snprintf(src, sizeof src, "block b(x) { return x |> %s }\nnetwork t { input x: [2, 3, 3] output y = x |> %s%s "
                 "output z = x |> b }\n", dsl, dsl, slope ? "(slope: 0.25)" : "");
        IrGraph *g = compile_ok(src);
        assert_int_equal(count_ops(g, (OpKind)op), 2);
        assert_int_equal(g->n_nodes, 2);
        assert_shape(output_shape(g, 0), "[2, 3, 3]");
        for (int32_t i = 0; i < g->n_nodes; i++) {
            const IrNode *n = &g->nodes[i];
            if (slope) assert_true(n->attr.act.slope == (i == 0 ? 0.25f : 0.01f));
            if (i == 1) assert_string_equal(n->scope, "b0");  /* made inside block b */
        }
        ir_free(g);
        if (!slope) {
            snprintf(src, sizeof src, "network t { input x: [4] output y = x |> %s(slope: 0.5) }\n", dsl);
            out = compile_fail(src);
            snprintf(want, sizeof want, "%s has no parameter 'slope'; its only parameter is x", dsl);
            assert_contains(out, want);
            free(out);
        }
    }
    assert_int_equal(acts, ACT_COUNT - 1);
}

/* ---- files, networks and --set ---- */

static char tmpdir[256];

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nnc_test_frontend_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    char sub[512];
    snprintf(sub, sizeof sub, "%s/lib", tmpdir);
    return mkdir(sub, 0700);
}

static int remove_tmpdir(void **state)
{
    (void)state;
    const char *files[] = {"main.net", "lib/blocks.net", "lib/acts.net", "cycle_a.net", "cycle_b.net", "bad.net",
                           "lib/broken.net", "text.net"};
    char path[512];
    for (size_t i = 0; i < NNC_COUNT(files); i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/lib", tmpdir);
    rmdir(path);
    return rmdir(tmpdir);
}

static void test_import(void **state)
{
    (void)state;
    /* main imports lib/blocks.net, which imports acts.net next to itself; main imports acts twice over */
    write_file("lib/acts.net", "block act(x) { return relu(x) }\n");
    write_file("lib/blocks.net", "import \"acts.net\"\nblock conv_act(x, c) { return x |> conv(c, 3, pad: 1) |> act }\n");
    write_file("main.net", "import \"lib/blocks.net\"\nimport \"lib/acts.net\"\n"
                           "network m { input x: [3, 8, 8] output y = x |> conv_act(5) |> act }\n");
    char path[512];
    snprintf(path, sizeof path, "%s/main.net", tmpdir);
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    IrGraph *g = fe_compile(path, NULL, &d);
    if (!g) fail_msg("%s", d.out.data);
    verify_or_fail(g);
    assert_shape(output_shape(g, 0), "[5, 8, 8]");
    assert_int_equal(count_ops(g, OP_RELU), 2);
    assert_non_null(find_param(g, "conv_act0.conv0.weight"));
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
    /* fe_compile_text resolves imports next to the path it is given */
    snprintf(path, sizeof path, "%s/text.net", tmpdir);
    const char *text = "import \"lib/blocks.net\"\nnetwork m { input x: [3, 8, 8] output y = conv_act(x, 2) }\n";
    diag_init(&d, &a);
    g = fe_compile_text(path, text, strlen(text), NULL, &d);
    if (!g) fail_msg("%s", d.out.data);
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
    /* imports that form a cycle are read once each */
    write_file("cycle_a.net", "import \"cycle_b.net\"\nnetwork m { input x: [4] output y = bb(x) }\n");
    write_file("cycle_b.net", "import \"cycle_a.net\"\nblock bb(x) { return relu(x) }\n");
    snprintf(path, sizeof path, "%s/cycle_a.net", tmpdir);
    diag_init(&d, &a);
    g = fe_compile(path, NULL, &d);
    if (!g) fail_msg("%s", d.out.data);
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
    /* an error inside an imported file is reported there, with the call chain back to main */
    write_file("lib/broken.net", "block widen(x) {\n    return x + conv(x, 8, 1)\n}\n");
    write_file("bad.net", "import \"lib/broken.net\"\nnetwork m {\n    input x: [3, 4, 4]\n    output y = widen(x)\n}\n");
    snprintf(path, sizeof path, "%s/bad.net", tmpdir);
    diag_init(&d, &a);
    assert_null(fe_compile(path, NULL, &d));
    assert_contains(d.out.data, "lib/broken.net:2:14: error: cannot add tensors of shapes [3, 4, 4] and [8, 4, 4]");
    assert_contains(d.out.data, "bad.net:4:16: note: in block 'widen', called here");
    diag_free(&d);
    arena_free(&a);
}

static void test_network_selection(void **state)
{
    (void)state;
    const char *src = "network small { input x: [4] output y = relu(x) }\n"
                      "network large { input x: [4] output y = x |> linear(100) }\n";
    FeOptions opt = {0};
    opt.network = "large";
    IrGraph *g = compile_ok_opt(src, &opt);
    assert_string_equal(g->name, "large");
    assert_shape(output_shape(g, 0), "[100]");
    ir_free(g);
    opt.network = "small";
    g = compile_ok_opt(src, &opt);
    assert_string_equal(g->name, "small");
    ir_free(g);
    opt.network = "medium";
    char *err = compile_fail_opt(src, &opt);
    assert_string_equal(err, "test.net:1:9: error: no network named 'medium' (given with --network); this file defines: small, large\n"
                             "    network small { input x: [4] output y = relu(x) }\n"
                             "            ^\n");
    free(err);
    err = compile_fail(src);
    assert_contains(err, "test.net:2:9: error: the file defines several networks (small, large); pick one with --network NAME");
    free(err);
    /* a single network needs no name; --network may still name it */
    opt.network = "only";
    g = compile_ok_opt("network only { input x: [4] output y = relu(x) }", &opt);
    ir_free(g);
    err = compile_fail("block b(x) { return x }");
    assert_string_equal(err, "test.net:1:1: error: the file defines no network; write 'network NAME { ... }'\n"
                             "    block b(x) { return x }\n"
                             "    ^\n");
    free(err);
    /* an empty file: the position, and no source line to show */
    err = compile_fail("");
    assert_string_equal(err, "test.net:1:1: error: the file defines no network; write 'network NAME { ... }'\n");
    free(err);
    err = compile_fail("# only a comment\n");
    assert_contains(err, "test.net:1:1: error: the file defines no network");
    free(err);
    /* a --network name with control bytes and invalid UTF-8 reaches the terminal escaped */
    opt.network = "\033[2J\xff\xc2\x9b";
    err = compile_fail_opt(src, &opt);
    assert_contains(err, "no network named '\\x1b[2J\\xff\\xc2\\x9b' (given with --network)");
    assert_null(strchr(err, '\033'));
    free(err);
}

static void test_defines(void **state)
{
    (void)state;
    const char *src = "network t(classes = 10, bias = true, p = 0.5, width) {\n"
                      "    input x: [8]\n"
                      "    output y = x |> linear(width) |> dropout(p) |> linear(classes, bias: bias)\n"
                      "}\n";
    FeDefine defs[] = {{"classes", "5"}, {"bias", "false"}, {"p", "0.25"}, {"width", "16"}};
    FeOptions opt = {0};
    opt.defines = defs;
    opt.n_defines = 4;
    IrGraph *g = compile_ok_opt(src, &opt);
    assert_shape(output_shape(g, 0), "[5]");
    assert_null(find_param(g, "linear1.bias"));
    assert_shape(&find_param(g, "linear0.weight")->shape, "[16, 8]");
    bool found = false;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == OP_DROPOUT) {
            found = true;
            assert_true(g->nodes[i].attr.dropout.p == 0.25f);
        }
    assert_true(found);
    ir_free(g);
    /* without --set width, the parameter has no value */
    opt.n_defines = 3;
    char *err = compile_fail_opt(src, &opt);
    assert_contains(err, "test.net:1:47: error: network parameter 'width' has no default; give a value with --set width=VALUE");
    free(err);
    FeDefine bad_name[] = {{"width", "16"}, {"depth", "3"}};
    opt.defines = bad_name;
    opt.n_defines = 2;
    err = compile_fail_opt(src, &opt);
    assert_string_equal(err, "nnc: error: --set depth: network 't' has no parameter 'depth'\n");
    free(err);
    FeDefine bad_value[] = {{"width", "sixteen"}};
    opt.defines = bad_value;
    opt.n_defines = 1;
    err = compile_fail_opt(src, &opt);
    assert_contains(err, "--set width=sixteen: the value must be an integer, a number, true or false");
    free(err);
    FeDefine huge[] = {{"width", "99999999999999999999"}};
    opt.defines = huge;
    err = compile_fail_opt(src, &opt);
    assert_contains(err, "too large");
    free(err);
}

/* ---- the graph and the passes ---- */

static void test_dce(void **state)
{
    (void)state;
    IrGraph *g = compile_ok("network t {\n"
                            "    input a: [3, 8, 8]\n"
                            "    input unused: [10]\n"
                            "    dead = a |> conv(4, 3) |> relu\n"
                            "    also_dead = unused |> linear(3)\n"
                            "    output y = a |> conv(8, 3) as live |> relu\n"
                            "}\n");
    assert_int_equal(g->n_nodes, 5);
    assert_int_equal(g->n_params, 6);
    char err[512];
    assert_true(pass_run_pipeline(g, 1, err, sizeof err));
    verify_or_fail(g);
    assert_int_equal(g->n_nodes, 2);
    assert_int_equal(g->n_params, 2);
    assert_non_null(find_param(g, "live.weight"));
    assert_null(find_param(g, "conv0.weight"));
    assert_int_equal(g->n_inputs, 2);  /* inputs stay: they are the API's arguments */
    assert_string_equal(g->values[g->inputs[1]].name, "unused");
    assert_shape(output_shape(g, 0), "[8, 6, 6]");
    ir_free(g);
    /* -O0 keeps everything */
    g = compile_ok("network t { input a: [4] d = relu(a) output y = sigmoid(a) }");
    assert_true(pass_run_pipeline(g, 0, err, sizeof err));
    assert_int_equal(g->n_nodes, 2);
    ir_free(g);
}

static void test_printer(void **state)
{
    (void)state;
    IrGraph *g = compile_ok("network t {\n    input x: [3, 8, 8]\n    output y = x |> conv(4, 3) |> relu\n}\n");
    StrBuf sb = {0};
    ir_print(g, &sb);
    assert_string_equal(sb.data, "graph t\n"
                                 "  input  %0 x [3, 8, 8]\n"
                                 "  param  %1 conv0.weight [4, 3, 3, 3]\n"
                                 "  param  %2 conv0.bias [4]\n"
                                 "  %3 = conv2d(%0, %1, %2) k=3x3 s=1x1 p=0x0 d=1x1 g=1 [4, 6, 6]   # test.net:3:21\n"
                                 "  %4 = relu(%3) [4, 6, 6]   # test.net:3:35\n"
                                 "  output y = %4\n");
    sb_free(&sb);
    ir_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statement_kinds),
        cmocka_unit_test(test_pipe_desugaring),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_tuples_and_parens),
        cmocka_unit_test(test_trailing_commas),
        cmocka_unit_test(test_comments_and_newlines),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_block_defaults_and_keywords),
        cmocka_unit_test(test_functions_as_values),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_loops),
        cmocka_unit_test(test_shape_queries),
        cmocka_unit_test(test_integer_arithmetic),
        cmocka_unit_test(test_parameter_names),
        cmocka_unit_test(test_as_paths),
        cmocka_unit_test(test_index_and_transparent_calls),
        cmocka_unit_test(test_shape_inference),
        cmocka_unit_test(test_builtins_from_op_table),
        cmocka_unit_test_setup_teardown(test_import, make_tmpdir, remove_tmpdir),
        cmocka_unit_test(test_network_selection),
        cmocka_unit_test(test_defines),
        cmocka_unit_test(test_dce),
        cmocka_unit_test(test_printer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
