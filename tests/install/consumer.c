/* consumer.c: a program built against the *installed* libnnc with nothing but
 * `pkg-config --cflags --libs [--static] nnc` (tests/example_embed.cmake):
 * it compiles a network from a string, prints its IR's first line, its
 * inputs and outputs, and a syntax error as the diagnostics come back.
 * Exit status 0 when all of that went as expected. */
#include <nnc/nnc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const net =
    "network tiny {\n"
    "    input x: [4]\n"
    "    output y = x |> linear(3) as fc |> relu\n"
    "}\n";

int main(void)
{
    nnc_model *m;
    char *diag = NULL, *ir = NULL;
    if (nnc_compile_string("tiny.net", net, NULL, &m, &diag) != 0) {
        fprintf(stderr, "consumer: %s\n", diag ? diag : "compile failed");
        free(diag);
        return 1;
    }
    if (nnc_emit_ir(m, &ir) != 0 || !strstr(ir, "fc.weight")) {
        fprintf(stderr, "consumer: no fc.weight in the IR:\n%s\n", ir ? ir : "(none)");
        return 1;
    }
    printf("nnc %s: network %s, %d input (%s, %lld), %d output (%s, %lld)\n", nnc_version(), nnc_model_name(m),
           nnc_model_inputs(m), nnc_model_input_name(m, 0), nnc_model_input_size(m, 0), nnc_model_outputs(m),
           nnc_model_output_name(m, 0), nnc_model_output_size(m, 0));
    free(ir);
    nnc_model_free(m);

    nnc_model *bad = NULL;
    if (nnc_compile_string("bad.net", "network oops {\n  input x: [4\n}\n", NULL, &bad, &diag) == 0 ||
        !diag || !strstr(diag, "bad.net:")) {
        fprintf(stderr, "consumer: the syntax error came back as '%s'\n", diag ? diag : "(nothing)");
        return 1;
    }
    printf("diagnostic: %.*s\n", (int)strcspn(diag, "\n"), diag);
    free(diag);
    return 0;
}
