/* app: runs tiny (inference, weights from TINY_WEIGHTS_PATH) on one input and
 * prints the outputs; then creates and frees the training module. Built with
 * EMBEDDED (app_embedded), the same from the weights linked into the program
 * (tiny_create_embedded, tiny_train_create_embedded). */
#ifdef EMBEDDED
#include "tiny_embedded.h"
#include "tiny_embedded_train.h"
#define CREATE(m) tiny_create_embedded(m, NULL)
#define TRAIN_CREATE(t, cfg) tiny_train_create_embedded(t, cfg)
#else
#include "tiny.h"
#include "tiny_train.h"
#define CREATE(m) tiny_create(m, TINY_WEIGHTS_PATH, NULL)
#define TRAIN_CREATE(t, cfg) tiny_train_create(t, TINY_WEIGHTS_PATH, cfg)
#endif

#include <stdio.h>
#include <string.h>

int main(void)
{
    const float x[2][4] = {{1.0f, -2.0f, 0.5f, 3.0f}, {-1.0f, 2.0f, -0.5f, -3.0f}};
    float y[2][3];
    tiny_model *m;
    if (CREATE(&m) != TINY_OK || tiny_forward(m, 2, &x[0][0], &y[0][0]) != TINY_OK) {
        fprintf(stderr, "app: %s\n", tiny_last_error(m));
        tiny_destroy(m);
        return 1;
    }
    printf("y: %.5f %.5f %.5f %.5f %.5f %.5f\n", y[0][0], y[0][1], y[0][2], y[1][0], y[1][1], y[1][2]);
    tiny_destroy(m);
    tiny_train *t;
    tiny_train_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (TRAIN_CREATE(&t, &cfg) != 0) {
        fprintf(stderr, "app: the training module's create failed\n");
        return 1;
    }
    printf("training module: %d tensors\n", tiny_train_tensor_count(t));
    tiny_train_destroy(t);
    return 0;
}
