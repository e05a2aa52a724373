/* test_frontend_syntax.c: the lexer and the parser.
 *
 * Parser tests print the AST as an S-expression and compare text, so a test
 * reads like the tree it expects ("(call f a b)"). A few read a value back
 * through a compiled graph (frontend_test.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend_test.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
