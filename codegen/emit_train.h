/* emit_train.h: lowering of an IR graph to a C training module.
 *
 * cg_emit_train_c() turns an inference graph (as the frontend elaborates it,
 * before the -O2 rewrites: batchnorm must keep its batch statistics) into the
 * C source and header of a training module: the forward pass in training
 * mode, softmax cross-entropy on the network's single output, the backward
 * pass (each op's gradient rule is named in its ops.def row), and the
 * optimizer update, behind the entry points of runtime/train_abi.h
 * (PREFIX_train_create, _create_from_memory, _step, _eval, _set_trainable,
 * _tensor_count, _tensor, _get_step, _set_step, _max_batch, _last_error,
 * _destroy). The inference code for the same network (emit_c.h) is unchanged
 * by it. */
#ifndef NNC_CODEGEN_EMIT_TRAIN_H
#define NNC_CODEGEN_EMIT_TRAIN_H

#include "../ir/ir.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct CgTrainOptions {
    int max_batch;            /* largest n a step accepts (>= 1) */
    const char *header_name;  /* the header as the .c #includes it ("lenet5_train.h") */
    const char *source_path;  /* the .net file, for the banner (NULL: the graph's source) */
    IrLoc *err_loc;           /* when not NULL, receives the DSL place an error is about (file NULL: none),
                               * and the message leaves the position out: the caller reports it with
                               * its source line (frontend.h diag_error_at) */
} CgTrainOptions;

/* Emits the training module's C source into c_src and its header into h_src.
 * Returns false with a sentence in err when the graph cannot be trained (more
 * than one output, an op with no gradient rule yet, a size too large). */
bool cg_emit_train_c(const IrGraph *g, const CgTrainOptions *opt, StrBuf *c_src, StrBuf *h_src, char *err,
                     size_t errlen);

#endif
