"""Wrong answers for chapter 02."""
from mutants import ALWAYS_EQUAL, Mutant

_VECTORISED_LOOP = """    for m in range(k_h):
        for n in range(k_w):
            # input pixel (i*s + m, j*s + n) for every output (i, j) at once: (N, out_h, out_w, C_in)
            shifted = x[:, m:m + (out_h - 1) * stride + 1:stride, n:n + (out_w - 1) * stride + 1:stride, :]
            y += shifted @ kernel[m, n]  # (..., C_in) @ (C_in, C_out): the sum over input channels
"""

# Correct values, one Python iteration per output pixel: only the speed check can catch it.
_PIXEL_LOOP = """    flat_kernel = kernel.reshape(k_h * k_w * c_in, c_out)
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, i * stride:i * stride + k_h, j * stride:j * stride + k_w, :]
            y[:, i, j, :] = window.reshape(x.shape[0], -1) @ flat_kernel
"""

MUTANTS = [
    Mutant("ex1_cross_correlation", "true convolution: the kernel is flipped",
           "np.sum(window * kernel)", "np.sum(window * kernel[::-1, ::-1])"),
    Mutant("ex1_cross_correlation", "window anchored at (i, j) + 1 (off by one)",
           "image[i:i + k_h, j:j + k_w]", "np.pad(image, ((0, 1), (0, 1)))[i + 1:i + 1 + k_h, j + 1:j + 1 + k_w]"),
    Mutant("ex2_padding_and_stride", "output_size without the + 1",
           "return (n + 2 * p - k) // s + 1", "return (n + 2 * p - k) // s"),
    Mutant("ex2_padding_and_stride", "one pixel too much padding (k instead of k - 1 at stride 1)",
           "(out - 1) * s + k - n", "(out - 1) * s + k - n + 1"),
    Mutant("ex2_padding_and_stride", "the extra padding pixel put at the top/left",
           "return before, after", "return after, before"),
    Mutant("ex2_padding_and_stride", "no max(..., 0): negative padding when the kernel is smaller than the stride",
           "max((out - 1) * s + k - n, 0)", "((out - 1) * s + k - n)"),
    Mutant("ex3_vectorised_conv2d", "bias left out",
           "y = y + bias", "y = y"),
    Mutant("ex3_vectorised_conv2d", "'same' padding with the extra pixel at the top/left",
           "pads.append((total // 2, total - total // 2))", "pads.append((total - total // 2, total // 2))"),
    Mutant("ex3_vectorised_conv2d", "kernel offsets ignore the stride (input not subsampled)",
           "x[:, m:m + (out_h - 1) * stride + 1:stride, n:n + (out_w - 1) * stride + 1:stride, :]",
           "x[:, m:m + out_h, n:n + out_w, :]"),
    Mutant("ex3_vectorised_conv2d", "correct values but a Python loop over every output pixel",
           _VECTORISED_LOOP, _PIXEL_LOOP),
    Mutant("ex4_max_pooling", "average pooling instead of max pooling",
           "blocks.max(axis=(2, 4))", "blocks.mean(axis=(2, 4))"),
    Mutant("ex4_max_pooling", "blocks of pixels size apart instead of neighbours (wrong reshape)",
           "x.reshape(n, out_h, size, out_w, size, c)",
           "x.reshape(n, size, out_h, size, out_w, c).transpose(0, 2, 1, 4, 3, 5)"),
    # Arrays of objects that equal anything: every answer is converted to a float array before it is compared.
    Mutant("ex1_cross_correlation", "an array of always-equal objects of the right shape",
           "    return out", f"    return np.full(out.shape, {ALWAYS_EQUAL}, dtype=object)"),
    Mutant("ex2_padding_and_stride", "an always-equal object instead of the output size whenever there is padding",
           "return (n + 2 * p - k) // s + 1", f"return {ALWAYS_EQUAL} if p else (n - k) // s + 1"),
    Mutant("ex2_padding_and_stride", "an array of always-equal objects of the right shape from conv2d_single",
           "    return out", f"    return np.full(out.shape, {ALWAYS_EQUAL}, dtype=object)"),
    Mutant("ex3_vectorised_conv2d", "an array of always-equal objects of the right shape",
           "y = y + bias", f"y = np.full(y.shape, {ALWAYS_EQUAL}, dtype=object)"),
    Mutant("ex4_max_pooling", "an array of always-equal objects of the right shape",
           "return blocks.max(axis=(2, 4))", f"return np.full(blocks.max(axis=(2, 4)).shape, {ALWAYS_EQUAL}, dtype=object)"),
]
