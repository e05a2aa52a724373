/* kernels.c: the C kernels that nnc pastes into generated model sources.
 *
 * Generated code must be one self-contained C99 file that users drop into
 * their own builds, so the kernels are not a library to link: the code
 * generator copies them as text (codegen/snippet.c). To keep a LeNet's output
 * free of LRN and transposed convolutions, the kernels are cut into sections.
 * A section opens with a marker line, alone on its line, of the form
 *     slash-star @kernel NAME [needs: DEP1 DEP2] star-slash
 * and runs to the next marker. The generator takes "prologue" (always), the
 * sections the graph calls and, transitively, their needs, in library order;
 * so a section must come after everything it needs, and must compile with
 * only those before it.
 *
 * The library is the files #included at the end of this one, in that order,
 * as one sectioned text, followed for training by grad_kernels.c:
 *   activations.h          the activation table; the prologue pastes it first
 *   kernels_gemm.c         prologue, the epilogue and prologue of fused layers, GEMM
 *   kernels_conv.c         convolution: im2col + GEMM, depthwise + pointwise, transposed
 *   kernels_elementwise.c  batchnorm and its folding, linear, the activations, copy, add
 *   kernels_pool.c         pooling, LRN, concat, softmax
 *   kernels_parallel.c     the instance's context (instruction set, thread pool) and the
 *                          GEMM on weights packed at create with its micro-kernels
 *   kernels_layers_mt.c    the layers that run on them: packed convolutions and dwpw,
 *                          linear layers and pooling over the threads
 *   kernels_winograd.c     3x3 convolutions by Winograd's F(4x4, 3x3) on those micro-kernels
 *   kernels_blocked.c      the blocked channel layout NCHW16c and the reorders to and from it
 *   kernels_blocked_conv.c the convolution on that layout: direct, register-blocked
 *   kernels_blocked_dw.c   depthwise convolution on NCHW16c
 *   kernels_blocked_pool.c max, average and global average pooling on NCHW16c
 * C code that runs the kernels (the tests) includes this file. For the code
 * generator, cmake/embed.cmake expands these #include lines into one string,
 * each file from its first marker on: a file's top comment, like this
 * paragraph, is documentation and is not copied; codegen/snippet.c
 * cg_kernel_library gives that text followed by grad_kernels.c's sections.
 *
 * Rules for every section: C99, warning-free under gcc and clang with
 * -Wall -Wextra -Werror -pedantic -Wshadow -Wstrict-prototypes
 * -Wmissing-prototypes, with and without NNC_USE_CBLAS; only static functions
 * (marked NNC_MAYBE_UNUSED, since a model may paste a section and call only
 * part of it); no global mutable state (two model instances may run in two
 * threads); no exit() and no printing; no VLAs; size_t offsets wherever a
 * batch-sized tensor is indexed. Tensors are fp32 NCHW, batch n at run time,
 * parameters in PyTorch layouts. An activation is a row of activations.h:
 * the kernels' NNC_ACT_* enum and every activation switch are generated from
 * it. tests/unit/test_kernel_sections.c compiles each section of the library
 * in isolation; the test_kernels_*.c check every kernel against a
 * double-precision reference. */
#include "kernels_gemm.c"
#include "kernels_conv.c"
#include "kernels_elementwise.c"
#include "kernels_pool.c"
#include "kernels_parallel.c"
#include "kernels_layers_mt.c"
#include "kernels_winograd.c"
#include "kernels_blocked.c"
#include "kernels_blocked_conv.c"
#include "kernels_blocked_dw.c"
#include "kernels_blocked_pool.c"
#include "kernels_sgemm.c"
