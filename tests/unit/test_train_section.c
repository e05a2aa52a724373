/* test_train_section.c: a network's `train` section as `nnc train` defaults
 * (frontend.h fe_train_settings): every setting's options, in order; and each
 * mistake reported at its line and column with what the section accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "frontend/frontend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char net[] =
    "network tiny(classes = 3) {\n"
    "    input image: [1, 4, 4]\n"
    "    output logits = image |> flatten |> linear(classes) as fc\n"
    "}\n";

/* Writes net + section into a temporary .net file; returns its path (free it). */
static char *write_model(const char *section)
{
    char dir[] = "/tmp/nnc_train_sectionXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = malloc(strlen(dir) + 8);
    sprintf(path, "%s/m.net", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(net, f);
    fputs(section, f);
    fclose(f);
    return path;
}

/* The settings as "flag=value flag ..." text, or the first diagnostic line. */
static char *settings(const char *section)
{
    char *path = write_model(section);
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    FeTrainSetting *st;
    int n;
    StrBuf out = {0};
    if (fe_train_settings(path, NULL, &st, &n, &d)) {
        for (int i = 0; i < n; i++)
            sb_printf(&out, "%s%s%s%s", i ? " " : "", st[i].flag, st[i].value ? "=" : "", st[i].value ? st[i].value : "");
    } else {
        const char *msg = strstr(d.out.data, ".net:");
        sb_printf(&out, "%.*s", (int)strcspn(msg ? msg + 4 : "", "\n"), msg ? msg + 4 : "");
    }
    char *r = strdup(out.data ? out.data : "");
    sb_free(&out);
    diag_free(&d);
    arena_free(&a);
    unlink(path);
    *strrchr(path, '/') = '\0';
    rmdir(path);
    free(path);
    return r;
}

static void expect(const char *section, const char *want)
{
    char *got = settings(section);
    if (strcmp(got, want) != 0) fail_msg("section:\n%s\ngot:  %s\nwant: %s", section, got, want);
    free(got);
}

static void test_settings(void **state)
{
    (void)state;
    expect("", "");
    expect("train tiny {\n"
           "    loss = cross_entropy(logits, labels, label_smoothing: 0.1)\n"
           "    optimizer = sgd(lr: 0.05, momentum: 0.9, weight_decay: 5e-4, nesterov: true)\n"
           "    schedule = multistep(milestones: [30, 60], gamma: 0.2, warmup: 2)\n"
           "    batch = 128\n"
           "    epochs = 90\n"
           "    seed = 3\n"
           "}\n",
           "--loss=cross-entropy --label-smoothing=0.10000000000000001 --optimizer=sgd --lr=0.050000000000000003 "
           "--weight-decay=0.00050000000000000001 --momentum=0.90000000000000002 --nesterov "
           "--schedule=multistep:30,60:0.20000000000000001 --warmup=2 --batch=128 --epochs=90 --seed=3");
    expect("train tiny {\n    optimizer = adam(lr: 0.002)\n    schedule = cosine\n}\n",
           "--optimizer=adam --lr=0.002 --schedule=cosine");
    expect("train tiny {\n    schedule = step(step_size: 30)\n    optimizer = adamw(weight_decay: 0.05)\n}\n",
           "--schedule=step:30 --optimizer=adamw --weight-decay=0.050000000000000003");
}

static void test_errors(void **state)
{
    (void)state;
    expect("train tiny {\n    lr = 0.1\n}\n",
           ":6:5: error: unknown train setting 'lr'; a train section sets batch, epochs, seed, warmup, optimizer, "
           "loss, schedule, augment and normalize");
    expect("train tiny {\n    augment = [crop(4), flip, jitter(0.25)]\n    normalize = ([0.5], [0.25])\n}\n",
           "--augment=crop:4,flip,jitter:0.25 --normalize=0.5,0.25");
    expect("train tiny {\n    normalize = (0.5, 0.25)\n}\n", "--normalize=0.5,0.25");
    expect("train tiny {\n    augment = [crop]\n}\n", ":6:16: error: 'crop' takes one number, e.g. crop(4)");
    expect("train tiny {\n    augment = [rotate(3)]\n}\n",
           ":6:16: error: an augmentation is crop(PAD), flip or jitter(AMOUNT)");
    expect("train tiny {\n    normalize = 0.5\n}\n",
           ":6:17: error: 'normalize' is (MEAN, STD), or ([MEANS], [STDS]) with one per channel");
    expect("train tiny {\n    optimizer = rmsprop(lr: 0.1)\n}\n",
           ":6:17: error: unknown optimizer 'rmsprop'; nnc has sgd, adam and adamw");
    expect("train tiny {\n    optimizer = adam(momentum: 0.9)\n}\n",
           ":6:22: error: 'adam' has no argument 'momentum'; it takes lr, weight_decay");
    expect("train tiny {\n    batch = 6.5\n}\n", ":6:13: error: 'batch' must be a whole number");
    expect("train tiny {\n    loss = hinge(logits)\n}\n",
           ":6:12: error: unknown loss 'hinge'; nnc train has cross_entropy, bce_with_logits and mse (the last two "
           "against one-hot labels)");
    expect("train tiny {\n    loss = mse(logits, labels)\n}\n", "--loss=mse");
    expect("train tiny {\n    loss = cross_entropy(logits, labels, aux_weight: 0.5)\n}\n",
           "--loss=cross-entropy --aux-weight=0.5");
    expect("train tiny {\n    loss = cross_entropy(scores, labels)\n}\n",
           ":6:26: error: cross_entropy's first argument names an output of network 'tiny'");
    expect("train tiny {\n    schedule = step(gamma: 0.5)\n}\n",
           ":6:16: error: step needs step_size: N (epochs between two decays)");
    expect("train tiny {\n    schedule = multistep(milestones: 30)\n}\n",
           ":6:38: error: 'milestones' is a list of epochs, e.g. [30, 60]");
    expect("train tiny {\n    optimizer = sgd(nesterov: 1)\n}\n", ":6:31: error: 'nesterov' is true or false");
    expect("train other {\n    batch = 1\n}\n", ":5:7: error: train section for unknown network 'other'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
