/* classify: runs LeNet-5, compiled into this program by nnc with its weights
 * (nnc_add_model ... EMBED_WEIGHTS), on four images: no file is read.
 *   classify      (images: a fixed test pattern, for the demo) */
#include "lenet5.h"

#include <stdio.h>

int main(void)
{
    static float images[4][1][28][28], logits[4][10];
    lenet5_model *m;
    for (int i = 0; i < 4; i++)
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) images[i][0][y][x] = (float)((x * (i + 1) + y) % 17) / 16.0f;
    if (lenet5_create_embedded(&m, NULL) != LENET5_OK) {
        fprintf(stderr, "classify: %s\n", lenet5_last_error(m));
        lenet5_destroy(m);
        return 1;
    }
    if (lenet5_forward(m, 4, &images[0][0][0][0], &logits[0][0]) != LENET5_OK) {
        fprintf(stderr, "classify: %s\n", lenet5_last_error(m));
        lenet5_destroy(m);
        return 1;
    }
    for (int i = 0; i < 4; i++) {
        int best = 0;
        for (int k = 1; k < 10; k++)
            if (logits[i][k] > logits[i][best]) best = k;
        printf("image %d: class %d\n", i, best);
    }
    lenet5_destroy(m);
    return 0;
}
