/* nnc_args.c: the command line of `nnc MODEL.net`, `nnc init` and `nnc run`
 * into a Cli (nnc_internal.h). Each option is taken as "--opt VALUE" or
 * "--opt=VALUE" and checked as it is read; a wrong one ends the parse with a
 * message and exit status 2. `nnc train`, `nnc eval` and `nnc bench` parse
 * their own (train_args.c, bench.c). */
#include "tools/nnc_internal.h"

#include "passes/passes.h"
#include "tools/train.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fail_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "nnc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nRun 'nnc --help' for the usage.\n");
    return 2;
}

/* Takes the value of an option given as "--opt VALUE" or "--opt=VALUE". */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') return argv[*i] + n + 1;
    if (strcmp(argv[*i], name) != 0) return NULL;
    if (*i + 1 >= argc) return "";
    return argv[++*i];
}

int cli_parse_args(int argc, char **argv, Cli *c)
{
    memset(c, 0, sizeof *c);
    c->emit = "c";
    c->opt_level = 2;
    c->batch = 1;
    c->limit = -1;
    int i = 1;
    if (argc > 1 && (strcmp(argv[1], "init") == 0 || strcmp(argv[1], "run") == 0)) c->cmd = argv[i++];
    for (; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;
        if ((v = opt_value(argc, argv, &i, "-o"))) c->out = v;
        else if ((v = opt_value(argc, argv, &i, "--emit"))) c->emit = v;
        else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0) c->opt_level = a[2] - '0';
        else if ((v = opt_value(argc, argv, &i, "--batch"))) {
            if (!cli_parse_long(v, 1, 1 << 20, &n)) return cli_fail_usage("--batch needs a whole number from 1 to 1048576, got '%s'", v);
            c->batch = (int)n;
        } else if (strcmp(a, "--stats") == 0) c->stats = true;
        else if ((v = opt_value(argc, argv, &i, "--print-after"))) {
            if (!pass_known(v)) {
                StrBuf names = {0};
                pass_list(&names);
                fprintf(stderr, "nnc: --print-after: no pass named '%s' (the passes: %s, or all)\n", v, names.data);
                sb_free(&names);
                return 2;
            }
            c->print_after = v;
        }
        else if ((v = opt_value(argc, argv, &i, "--network"))) c->fe.network = v;
        else if ((v = opt_value(argc, argv, &i, "--set"))) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || c->fe.n_defines == 32) return cli_fail_usage("--set needs NAME=VALUE, got '%s'", v);
            c->defines[c->fe.n_defines].name = strndup(v, (size_t)(eq - v));
            c->defines[c->fe.n_defines++].value = eq + 1;
        } else if ((v = opt_value(argc, argv, &i, "--seed"))) {
            char *end;
            errno = 0;
            c->seed = strtoull(v, &end, 10);
            if (!*v || *end || errno || v[0] == '-') return cli_fail_usage("--seed needs a whole number, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--weights"))) c->weights = v;
        else if ((v = opt_value(argc, argv, &i, "--input"))) {
            if (c->n_inputs == 16) return cli_fail_usage("too many --input options (at most 16)%s", "");
            c->inputs[c->n_inputs++] = v;
        } else if ((v = opt_value(argc, argv, &i, "--output"))) {
            if (c->n_outputs == 16) return cli_fail_usage("too many --output options (at most 16)%s", "");
            c->outputs[c->n_outputs++] = v;
        } else if ((v = opt_value(argc, argv, &i, "--limit"))) {
            if (!cli_parse_long(v, 1, 1L << 30, &c->limit)) return cli_fail_usage("--limit needs a positive whole number, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--labels"))) c->labels = v;
        else if ((v = opt_value(argc, argv, &i, "--depfile"))) {
            if (!*v) return cli_fail_usage("--depfile needs a file name%s", "");
            c->depfile = v;
        } else if ((v = opt_value(argc, argv, &i, "--embed-weights"))) {
            if (!*v) return cli_fail_usage("--embed-weights needs a safetensors file%s", "");
            c->embed_weights = v;
        } else if ((v = opt_value(argc, argv, &i, "--check-weights"))) {
            if (!*v) return cli_fail_usage("--check-weights needs a safetensors file%s", "");
            c->check_weights = v;
        }
        else if (a[0] == '-' && a[1]) return cli_fail_usage("unknown option '%s'", a);
        else if (!c->model) c->model = a;
        else return cli_fail_usage("unexpected argument '%s' (one model file at a time)", a);
    }
    c->fe.defines = c->defines;
    if (!c->model) return cli_fail_usage("no model file given%s", "");
    if (strcmp(c->emit, "c") && strcmp(c->emit, "ir") && strcmp(c->emit, "dot") && strcmp(c->emit, "train"))
        return cli_fail_usage("--emit takes c, ir, dot or train, not '%s'", c->emit);
    if ((c->depfile || c->embed_weights || c->check_weights) && (c->cmd || c->stats))
        return cli_fail_usage("%s is an option of 'nnc MODEL.net' (compile), without --stats",
                              c->depfile ? "--depfile" : c->embed_weights ? "--embed-weights" : "--check-weights");
    if (c->embed_weights && c->check_weights)
        return cli_fail_usage("--embed-weights checks its file already: give it or --check-weights, not both%s", "");
    if (c->depfile && (c->out ? strcmp(c->out, "-") == 0 : strcmp(c->emit, "ir") == 0 || strcmp(c->emit, "dot") == 0))
        return cli_fail_usage("--depfile names the files -o writes: give -o FILE, not -o -%s", "");
    if (c->embed_weights && strcmp(c->emit, "c") && strcmp(c->emit, "train"))
        return cli_fail_usage("--embed-weights goes with --emit=c or --emit=train, not --emit=%s", c->emit);
    if (c->embed_weights && c->out && strcmp(c->out, "-") == 0)
        return cli_fail_usage("--embed-weights writes OUT_weights.S beside OUT.c: give -o FILE.c, not -o -%s", "");
    return 0;
}
