/* activations.h: the one table of activations, shared by the compiler and the
 * kernels it pastes into generated code.
 *
 * Each row is an activation of the language (a DSL built-in and an op of
 * ir/ops.def, named as the row), a value of ir.h's ActKind (ACT_ID) and of the
 * kernels' enum (NNC_ACT_ID), an epilogue or prologue a fused layer can apply
 * (passes/fuse_epilogue.c, fuse_prologue.c), and its arithmetic, forward and
 * backward. Adding an activation is one row here plus, when its arithmetic
 * needs one, a helper function in kernels.c; nothing else lists them.
 *
 *   X(ID, name, FROM, SLOPE, FORWARD, GRAD_IF, GRAD)
 *
 *   ID       the constant's suffix (ACT_RELU, NNC_ACT_RELU, OP_RELU)
 *   name     the DSL built-in and the op's name (unquoted)
 *   FROM     what the backward reads as v: NNC_FROM_Y the output; NNC_FROM_X
 *            the input; NNC_FROM_XS the input, or the output when the slope
 *            is positive (same sign); a training chain conv -> batchnorm ->
 *            activation is fused only when the output will do
 *   SLOPE    1: takes a slope parameter s (leaky_relu's negative slope); 0: none
 *   FORWARD  y as an expression of v (the input) and s
 *   GRAD_IF  the backward adds to dx only when this holds (v the value FROM
 *            says, dy the output's gradient, s the slope) ...
 *   GRAD     ... and adds this: dx += GRAD_IF ? GRAD : nothing. (Adding 0.0f
 *            is not the same as adding nothing: -0.0f + 0.0f is +0.0f.)
 *
 * The expressions are C99 on float, use only <math.h>, and match PyTorch's
 * definitions (torch.nn.ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh, SiLU,
 * Hardswish, GELU(approximate='none')) and their autograd formulas. This file
 * holds macros only, so the compiler can include it, and the generated code
 * pastes it before the kernels. */
#ifndef NNC_ACTIVATIONS_H
#define NNC_ACTIVATIONS_H

#define NNC_FROM_Y 0
#define NNC_FROM_X 1
#define NNC_FROM_XS 2

/* nnc_sigmoidf (kernels_gemm.c's prologue): torch.sigmoid, exp of -|v| only.
 * gelu is the exact form, torch.nn.GELU(approximate='none'), x Phi(x) with
 * Phi(x) = erfc(-x / sqrt 2) / 2: erfc rather than torch's 1 + erf(x / sqrt 2),
 * which cancels for negative x (at x = -3, float32 erf leaves 4e-5 of relative
 * error, erfc 1e-6); its derivative is Phi(x) + x phi(x), phi(x) = exp(-x^2/2)
 * / sqrt(2 pi). silu and hardswish differentiate as torch's silu_backward and
 * hardswish_backward. */
#define NNC_ACTIVATIONS(X)                                                                                          \
    X(RELU, relu, NNC_FROM_Y, 0, v < 0.0f ? 0.0f : v, !(v <= 0.0f), dy)                                              \
    X(RELU6, relu6, NNC_FROM_Y, 0, v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v, !(v <= 0.0f || v >= 6.0f), dy)             \
    X(LEAKY_RELU, leaky_relu, NNC_FROM_XS, 1, v < 0.0f ? s * v : v, 1, v > 0.0f ? dy : s * dy)                      \
    X(SIGMOID, sigmoid, NNC_FROM_Y, 0, nnc_sigmoidf(v), 1, dy * (v * (1.0f - v)))                                    \
    X(TANH, tanh, NNC_FROM_Y, 0, tanhf(v), 1, dy * (1.0f - v * v))                                                   \
    X(SILU, silu, NNC_FROM_X, 0, v / (1.0f + expf(-v)), 1,                                                           \
      dy * (1.0f / (1.0f + expf(-v))) * (1.0f + v * (1.0f - 1.0f / (1.0f + expf(-v)))))                            \
    X(HARDSWISH, hardswish, NNC_FROM_X, 0, v * (v + 3.0f < 0.0f ? 0.0f : v + 3.0f > 6.0f ? 6.0f : v + 3.0f) / 6.0f,  \
      !(v < -3.0f), v <= 3.0f ? dy * (v / 3.0f + 0.5f) : dy)                                                        \
    X(GELU, gelu, NNC_FROM_X, 0, 0.5f * v * erfcf(-v * 0.70710678118654752f), 1,                                     \
      dy * (0.5f * erfcf(-v * 0.70710678118654752f) + v * expf(-0.5f * v * v) * 0.39894228040143268f))

#endif
