/* grad_kernels.c: the training kernels nnc pastes into generated training code:
 * forward passes that differ in training mode (batchnorm with batch
 * statistics, dropout), the backward pass of every differentiable op, and the
 * losses.
 *
 * Format and rules are those of kernels.c (read its top comment): sections
 * open with a marker line "slash-star @kernel NAME [needs: DEPS] star-slash",
 * C99, static NNC_MAYBE_UNUSED functions only, no global mutable state, no
 * exit/printing/allocation, no VLAs, size_t offsets for batch-sized tensors,
 * warning-free with and without NNC_USE_CBLAS. These files are pasted AFTER
 * kernels.c's, as if they were its continuation: their sections may need any
 * forward section (gemm, conv_common, conv2d for nnc_im2col,
 * conv_transpose2d for nnc_col2im, epilogue, ...), and names are one
 * namespace across all the files. The code generator selects sections from
 * one text, the forward files first (codegen/snippet.c cg_kernel_library),
 * and keeps "prologue" (which these rely on: math.h, string.h, stddef.h,
 * NNC_MAYBE_UNUSED, NNC_ACT_*).
 *
 * The training kernels are the files #included at the end of this one, in
 * that order (cmake/embed.cmake expands them as for kernels.c):
 *   grad_kernels_layers.c  gradient accumulation and bias, the backward of the
 *                          convolutions, linear and pooling
 *   grad_kernels_norm.c    batchnorm in training mode (alone and fused with the
 *                          convolution before it and the activation after it),
 *                          the backward of batchnorm and of the activations
 *   grad_kernels_loss.c    the backward of concat, softmax and LRN, dropout,
 *                          the losses, count_correct
 *
 * Semantics are PyTorch autograd's, fp32, NCHW, PyTorch parameter layouts.
 *
 * THE GRADIENT CONVENTION: every gradient output ACCUMULATES, dx += ...,
 * dw += ..., db += ..., dlogits += ... (a tensor read by several nodes gets
 * the sum of their contributions, as autograd's fan-out does). The training
 * step zeroes every gradient buffer before the backward pass. A gradient
 * pointer that is NULL is not wanted and not computed (the first layer's dx,
 * a layer without bias's db, frozen parameters). Forward results (y, the
 * saved batch statistics, the running statistics, the losses) are stored,
 * not accumulated. A gradient buffer must not alias any input of the kernel.
 *
 * The tests/unit/test_grad_kernels_*.c check every backward against central
 * finite differences of a double-precision reference forward;
 * tests/unit/test_kernel_sections.c compiles every section in isolation
 * (with its needs from all the files). */
#include "grad_kernels_layers.c"
#include "grad_kernels_norm.c"
#include "grad_kernels_loss.c"
