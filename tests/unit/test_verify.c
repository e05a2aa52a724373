/* test_verify.c: the IR verifier (ir/verify.c) refuses broken graphs.
 *
 * One small well-formed graph (conv -> batchnorm -> relu, a residual add, a
 * concat, a pool, flatten, linear), built with the IR API, verifies; then each
 * test breaks one thing the verifier is there to catch, directly in the
 * graph's arrays (the API refuses to build such graphs), and checks that
 * ir_verify returns false with a message that names the problem: an invalid
 * op, too few or too many inputs, an input list or an input value out of
 * range, an input made by a later node or by the node itself (not
 * topological), an unsupported dtype, a node whose output value does not name
 * it, a producer index out of range, an activation without a producer and a
 * parameter with one, a wrong rank, a stored shape that differs from the op's
 * shape rule, attributes the rule refuses (kernel, stride, groups, bias flag
 * against the arity, epilogue activation, concat axis), and an output out of
 * range. Finally the zoo models verify before and after -O2. A verifier that
 * accepted every graph fails here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "tests/unit/ir_builder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The graph every test starts from, and its values. */
typedef struct {
    B b;
    int32_t x;      /* input [3, 8, 8] */
    int32_t c1;     /* conv2d(x) 3 -> 4 channels, with bias */
    int32_t n1;     /* batchnorm(c1) */
    int32_t r1;     /* relu(n1) */
    int32_t c2;     /* conv2d(r1), no bias */
    int32_t sum;    /* add(c2, r1) */
    int32_t cat;    /* concat(sum, r1): [8, 8, 8] */
    int32_t pool;   /* maxpool2d(cat) 2x2: [8, 4, 4] */
    int32_t flat;   /* flatten: [128] */
    int32_t fc;     /* linear(flat) -> 10 */
} G;

static G well_formed(void)
{
    G t;
    t.b = begin("t", shp(3, 3, 8, 8, 0));
    t.x = t.b.g->inputs[0];
    t.c1 = conv(&t.b, t.x, "c1", 4, 1, true, false);
    t.n1 = bn(&t.b, t.c1, "n1");
    t.r1 = relu(&t.b, t.n1);
    t.c2 = conv(&t.b, t.r1, "c2", 4, 1, false, false);
    t.sum = add(&t.b, t.c2, t.r1);
    IrAttr cat = {.concat = {.axis = 0}};
    int32_t ins[2] = {t.sum, t.r1};
    t.cat = node(&t.b, OP_CONCAT, ins, 2, &cat, "cat");
    IrAttr pool = {.pool = {.kh = 2, .kw = 2, .sh = 2, .sw = 2, .dh = 1, .dw = 1}};
    t.pool = node(&t.b, OP_MAXPOOL2D, &t.cat, 1, &pool, "pool");
    t.flat = unary(&t.b, OP_FLATTEN, t.pool);
    t.fc = linear(&t.b, t.flat, "fc", 10);
    ir_add_output(t.b.g, "y", t.fc);
    return t;
}

/* The node that produces value v. */
static IrNode *maker(G *t, int32_t v) { return &t->b.g->nodes[t->b.g->values[v].node]; }

/* ir_verify must refuse t's graph with a message containing each of the
 * NULL-terminated strings; frees the graph. */
static void refused(G *t, const char *what, ...)
{
    char err[512] = "";
    if (ir_verify(t->b.g, err, sizeof err)) fail_msg("ir_verify accepted a graph with %s", what);
    va_list ap;
    va_start(ap, what);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        if (!strstr(err, s)) fail_msg("%s: ir_verify said \"%s\", which does not contain \"%s\"", what, err, s);
    va_end(ap);
    ir_free(t->b.g);
}

static void test_well_formed(void **state)
{
    (void)state;
    G t = well_formed();
    char err[512] = "untouched";
    if (!ir_verify(t.b.g, err, sizeof err)) fail_msg("ir_verify refused the well-formed graph: %s", err);
    assert_string_equal(err, "untouched");  /* no message on success */
    ir_free(t.b.g);
}

static void test_invalid_op(void **state)
{
    (void)state;
    G t = well_formed();
    maker(&t, t.r1)->op = OP_COUNT;
    refused(&t, "an op past the table", "has an invalid op", NULL);
    t = well_formed();
    maker(&t, t.r1)->op = OP_PARAM;  /* a leaf op as a node */
    refused(&t, "a param op as a node", "has an invalid op 1", NULL);
    t = well_formed();
    maker(&t, t.r1)->op = OP_INPUT;
    refused(&t, "an input op as a node", "has an invalid op 0", NULL);
}

static void test_arity(void **state)
{
    (void)state;
    G t = well_formed();
    maker(&t, t.sum)->n_in = 1;  /* add takes exactly 2 */
    refused(&t, "an add of one input", "(add) has 1 inputs", NULL);
    t = well_formed();
    maker(&t, t.r1)->n_in = 2;  /* relu takes 1; its list is followed by c2's, so the ids stay in range */
    refused(&t, "a relu of two inputs", "(relu) has 2 inputs", NULL);
    t = well_formed();
    maker(&t, t.n1)->n_in = 4;  /* batchnorm takes 5 */
    refused(&t, "a batchnorm of four inputs", "(batchnorm) has 4 inputs", NULL);
    t = well_formed();
    maker(&t, t.c1)->n_in = 1;  /* conv2d takes at least 2 */
    refused(&t, "a conv without a weight", "(conv2d) has 1 inputs", NULL);
}

static void test_inputs_out_of_range(void **state)
{
    (void)state;
    G t = well_formed();
    maker(&t, t.fc)->in_first = t.b.g->n_ins - 1;  /* 3 inputs from the last entry: past the list */
    refused(&t, "an input list past the end", "has its inputs out of range", NULL);
    t = well_formed();
    maker(&t, t.fc)->in_first = -1;
    refused(&t, "a negative input list", "has its inputs out of range", NULL);
    t = well_formed();
    t.b.g->ins[maker(&t, t.r1)->in_first] = t.b.g->n_values;
    refused(&t, "an input id past the values", "input 0 is an invalid value", NULL);
    t = well_formed();
    t.b.g->ins[maker(&t, t.sum)->in_first + 1] = -1;
    refused(&t, "a negative input id", "input 1 is an invalid value -1", NULL);
}

static void test_not_topological(void **state)
{
    (void)state;
    G t = well_formed();
    /* the relu reads the concat, which a later node makes */
    t.b.g->ins[maker(&t, t.r1)->in_first] = t.cat;
    refused(&t, "an input made by a later node", "(relu) reads", "before node", NULL);
    t = well_formed();
    /* the add reads its own output */
    t.b.g->ins[maker(&t, t.sum)->in_first] = t.sum;
    refused(&t, "a node reading its own output", "(add) reads", NULL);
}

static void test_dtype(void **state)
{
    (void)state;
    G t = well_formed();
    t.b.g->values[t.r1].dtype = (DType)(DT_F32 + 1);
    refused(&t, "a value of an unknown dtype", "a dtype it does not support", NULL);
}

static void test_output_value_not_its_own(void **state)
{
    (void)state;
    G t = well_formed();
    maker(&t, t.sum)->out = t.r1;  /* two nodes claim the relu's value */
    refused(&t, "two nodes producing one value", "(add) claims value", "does not name it as producer", NULL);
    t = well_formed();
    maker(&t, t.fc)->out = t.b.g->n_values;
    refused(&t, "a node producing a value out of range", "(linear) claims value", NULL);
    t = well_formed();
    maker(&t, t.fc)->out = -1;
    refused(&t, "a node producing no value", "(linear) claims value -1", NULL);
}

static void test_value_producer(void **state)
{
    (void)state;
    G t = well_formed();
    t.b.g->values[t.fc].node = t.b.g->n_nodes;
    refused(&t, "a producer past the nodes", "names a node", "does not exist", NULL);
    t = well_formed();
    t.b.g->values[t.r1].node = -1;  /* an activation nobody makes */
    refused(&t, "an activation without a producer", "only activations have a producing node", NULL);
    t = well_formed();
    t.b.g->values[t.b.g->params[0]].node = 0;  /* a parameter a node makes */
    refused(&t, "a parameter with a producer", "only activations have a producing node", NULL);
}

static void test_rank(void **state)
{
    (void)state;
    G t = well_formed();
    t.b.g->values[t.flat].shape.rank = 0;
    refused(&t, "a rank-0 value", "has rank 0", NULL);
    t = well_formed();
    t.b.g->values[t.x].shape.rank = IR_MAX_RANK + 1;
    refused(&t, "a rank past IR_MAX_RANK", "has rank 5", NULL);
}

static void test_wrong_shape(void **state)
{
    (void)state;
    G t = well_formed();
    t.b.g->values[t.r1].shape.dim[2] = 9;  /* relu keeps [4, 8, 8] */
    refused(&t, "a stored shape other than the rule's", "(relu) has shape [4, 8, 9], but its rule gives [4, 8, 8]",
            NULL);
    t = well_formed();
    t.b.g->values[t.cat].shape.dim[0] = 4;  /* the concat of 4 and 4 channels */
    refused(&t, "a concat with too few channels", "(concat) has shape [4, 8, 8], but its rule gives [8, 8, 8]", NULL);
    t = well_formed();
    /* a parameter of the wrong shape: the rule of its reader refuses it */
    t.b.g->values[t.b.g->params[0]].shape.dim[0] = 5;
    refused(&t, "a conv weight for 5 output channels", "(conv2d)", "the weight has shape [5, 3, 3, 3]", NULL);
    t = well_formed();
    t.b.g->values[t.c2].shape.dim[1] = 4;  /* the add's operands no longer agree */
    refused(&t, "an add of two shapes", "(conv2d) has shape [4, 4, 8], but its rule gives [4, 8, 8]", NULL);
}

static void test_bad_attributes(void **state)
{
    (void)state;
    G t = well_formed();
    maker(&t, t.c1)->attr.conv.kh = 0;
    refused(&t, "a conv kernel of 0", "(conv2d)", "the kernel size must be at least 1", NULL);
    t = well_formed();
    maker(&t, t.c2)->attr.conv.sw = 0;
    refused(&t, "a conv stride of 0", "(conv2d)", "the stride must be at least 1", NULL);
    t = well_formed();
    maker(&t, t.c2)->attr.conv.groups = 3;
    refused(&t, "groups that divide no channel count", "(conv2d)", "groups = 3 must divide", NULL);
    t = well_formed();
    maker(&t, t.c1)->attr.conv.bias = false;  /* three inputs, but no bias */
    refused(&t, "a bias flag against the arity", "(conv2d)", "has 3 inputs, but its attributes", NULL);
    t = well_formed();
    maker(&t, t.c1)->attr.conv.epi.act = (ActKind)(ACT_COUNT + 5);
    refused(&t, "an unknown epilogue activation", "(conv2d)", "epilogue activation", "is unknown", NULL);
    t = well_formed();
    maker(&t, t.cat)->attr.concat.axis = 3;
    refused(&t, "a concat axis past the rank", "(concat)", "concat axis 3 is out of range", NULL);
    t = well_formed();
    maker(&t, t.pool)->attr.pool.kh = 9;  /* larger than the 8x8 input */
    refused(&t, "a pool window larger than its input", "(maxpool2d)", "does not fit the input", NULL);
    t = well_formed();
    maker(&t, t.fc)->attr.linear.out_features = 11;  /* the weight has 10 rows */
    refused(&t, "out_features against the weight", "(linear)", NULL);
}

static void test_output_out_of_range(void **state)
{
    (void)state;
    G t = well_formed();
    t.b.g->outputs[0].value = t.b.g->n_values;
    refused(&t, "an output past the values", "output 0 is an invalid value", NULL);
    t = well_formed();
    t.b.g->outputs[0].value = -1;
    refused(&t, "a negative output", "output 0 is an invalid value", NULL);
}

/* The zoo models verify as elaborated and after the -O2 pipeline. */
static void test_zoo_verifies(void **state)
{
    (void)state;
    const char *names[] = {"lenet5", "resnet18", "mobilenet_v2", "googlenet", "densenet121", "dcgan_generator"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char err[512] = "";
        IrGraph *g = compile_model(names[i]);
        if (!ir_verify(g, err, sizeof err)) fail_msg("%s as elaborated: %s", names[i], err);
        if (!pass_run_pipeline(g, 2, err, sizeof err)) fail_msg("%s: -O2: %s", names[i], err);
        if (!ir_verify(g, err, sizeof err)) fail_msg("%s after -O2: %s", names[i], err);
        ir_free(g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_formed),
        cmocka_unit_test(test_invalid_op),
        cmocka_unit_test(test_arity),
        cmocka_unit_test(test_inputs_out_of_range),
        cmocka_unit_test(test_not_topological),
        cmocka_unit_test(test_dtype),
        cmocka_unit_test(test_output_value_not_its_own),
        cmocka_unit_test(test_value_producer),
        cmocka_unit_test(test_rank),
        cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_bad_attributes),
        cmocka_unit_test(test_output_out_of_range),
        cmocka_unit_test(test_zoo_verifies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
