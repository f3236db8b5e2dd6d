"""The roofline (chapter 06): is a layer limited by arithmetic or by memory traffic?

A chip does at most ``peak`` FLOP/s and moves at most ``bandwidth`` bytes/s between memory and
its arithmetic units. A computation that does ``I`` FLOPs per byte it moves (its arithmetic
intensity) therefore runs at most at ``min(peak, I x bandwidth)``: below the ridge point
``peak / bandwidth`` it is memory-bound, above it compute-bound. The chapter's exercises write
those two formulas and a layer's intensity from its shapes; this module holds what the plot and
the benchmark need around them: the published peaks, the measured ones, the measured side of a
model's layers, and the plot.

Convention, stated once: FLOPs = 2 x multiply-accumulates (plus the bias adds), as in
``efficient_dl.measure.count_flops``; the bytes a layer moves = (its inputs + its weights, kernel
and bias + its outputs) x bytes per value, each read or written exactly once, as if the cache
were ideal. That is the least traffic the layer can cause, so its intensity is an upper bound.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from efficient_dl import profile

TFLOPS = 1e12
GB_S = 1e9


@dataclasses.dataclass(frozen=True)
class PublishedPeak:
    """A device's datasheet figures: dense peak FLOP/s per dtype (no sparsity) and memory bandwidth.

    A dtype the device has no fast path for is None (not zero: it still runs, only slowly).
    """

    name: str
    product: str  # the exact product the figures are for
    float32_flops_per_s: float | None
    bfloat16_flops_per_s: float | None  # tensor cores / matrix units, dense
    float16_flops_per_s: float | None  # tensor cores / matrix units, dense
    bandwidth_bytes_per_s: float
    source: str
    note: str = ""

    def peak(self, dtype: str = "float32") -> float | None:
        try:
            return {"float32": self.float32_flops_per_s, "bfloat16": self.bfloat16_flops_per_s,
                    "float16": self.float16_flops_per_s}[dtype]
        except KeyError:
            raise ValueError(f"dtype {dtype!r}: choose float32, bfloat16 or float16") from None


# Checked against the sources on 2026-12-01; "unconfirmed" marks what could not be.
PUBLISHED_PEAKS: tuple[PublishedPeak, ...] = (
    PublishedPeak(
        "NVIDIA T4", "NVIDIA T4 Tensor Core GPU (PCIe, 70 W, 16 GB GDDR6)",
        8.1 * TFLOPS, None, 65 * TFLOPS, 320 * GB_S,
        "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/t4-tensor-core-datasheet-951643.pdf",
        "65 TFLOPS is 'mixed precision (FP16/FP32)' on tensor cores; Turing has no bfloat16."),
    PublishedPeak(
        "NVIDIA A100", "NVIDIA A100 80GB SXM (HBM2e)",
        19.5 * TFLOPS, 312 * TFLOPS, 312 * TFLOPS, 2_039 * GB_S,
        "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
        "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf",
        "Tensor-core figures dense (the datasheet's 624 TFLOPS is with 2:4 sparsity); TF32 is 156 TFLOPS dense."),
    PublishedPeak(
        "NVIDIA H100", "NVIDIA H100 SXM5 80GB (HBM3)",
        67 * TFLOPS, 989 * TFLOPS, 989 * TFLOPS, 3_350 * GB_S,
        "https://www.nvidia.com/en-us/data-center/h100/",
        "The datasheet gives 1,979 TFLOPS bfloat16/float16 'with sparsity'; dense is half, 989."),
    PublishedPeak(
        "Google TPU v5e", "Google Cloud TPU v5e, one chip (16 GB HBM2)",
        None, 197 * TFLOPS, None, 819 * GB_S,
        "https://cloud.google.com/tpu/docs/v5e",
        "The matrix units compute bfloat16 (and int8: 394 TOPS); float32 matmuls are done in several "
        "bfloat16 passes, with no published peak."),
    PublishedPeak(
        "Laptop CPU (Zen 4)", "AMD Ryzen 7 7840U: 8 Zen 4 cores, 3.3 GHz base (5.1 GHz boost), LPDDR5x-7500",
        8 * 3.3e9 * 32, 8 * 3.3e9 * 64, None, 7_500e6 * 128 / 8,
        "https://www.amd.com/en/products/processors/laptop/ryzen/7000-series/amd-ryzen-7-7840u.html",
        "Derived, not published: float32 = 8 cores x 3.3 GHz x 32 FLOP/cycle (two 256-bit FMA pipes: 2 x 8 lanes "
        "x 2) = 845 GFLOP/s at base clock; bfloat16 = twice that, assuming AVX-512 BF16 dot products (VDPBF16PS) "
        "at the FMA pipes' rate (unconfirmed); bandwidth = 7,500 MT/s x 128-bit bus = 120 GB/s (memory type from "
        "secondary sources, unconfirmed). No fast float16: the cores only convert it. Same core as this course's "
        "test machine (AMD EPYC, Zen 4)."),
)


def published_peak(name: str) -> PublishedPeak:
    for row in PUBLISHED_PEAKS:
        if row.name == name:
            return row
    raise KeyError(f"No published peak named {name!r}; the table has {[r.name for r in PUBLISHED_PEAKS]}.")


def ridge_point(peak_flops_per_s: float, bandwidth_bytes_per_s: float) -> float:
    """The intensity (FLOPs per byte) where the memory roof meets the compute roof."""
    return peak_flops_per_s / bandwidth_bytes_per_s


def attainable_flops_per_s(intensity, peak_flops_per_s: float, bandwidth_bytes_per_s: float):
    """The roofline itself: min(peak, intensity x bandwidth); ``intensity`` may be an array."""
    return np.minimum(peak_flops_per_s, np.asarray(intensity, dtype=float) * bandwidth_bytes_per_s)


# --- the measured side of a model -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerIntensity:
    name: str
    layer_class: str
    flops: int  # for the whole batch
    bytes: int  # inputs + weights + outputs, each once (see the module docstring)
    intensity: float  # FLOPs per byte


def layer_intensities(model, batch_size: int, bytes_per_value: int = 4) -> list[LayerIntensity]:
    """Arithmetic intensity of every layer that does FLOPs, for one forward pass at ``batch_size``.

    FLOPs from ``efficient_dl.measure.flops_by_layer`` (per example) times the batch; bytes from
    the built layer's input and output shapes and its weights, at ``bytes_per_value`` each
    (4 for float32, 2 for bfloat16 or float16). Layers that count no FLOPs (pooling, Flatten,
    activations) are left out: their intensity is zero by the convention. The weights are read
    once per batch, so a bigger batch raises the intensity of weight-heavy layers (Dense).
    """
    from efficient_dl import measure

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    flops = {name: n for name, _, n in measure.flops_by_layer(model)}
    rows = []
    for name, layer in _leaf_layers(model):
        per_example = flops.get(name, 0)
        if not per_example:
            continue
        inputs, outputs = (math.prod(s[1:]) for s in measure._shapes(layer))
        weights = sum(math.prod(w.shape) for w in layer.weights)
        moved = (batch_size * (inputs + outputs) + weights) * bytes_per_value
        total = per_example * batch_size
        rows.append(LayerIntensity(name, type(layer).__name__, total, moved, total / moved))
    return rows


def _leaf_layers(model, prefix: str = ""):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer, f"{prefix}{layer.name}/")
        else:
            yield f"{prefix}{layer.name}", layer


# --- measured peaks ---------------------------------------------------------------------


def _on_accelerator() -> bool:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.devices()[0].platform != "cpu"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
    return False


def measure_peak_flops(dtype: str = "float32", size: int | None = None, repeats: int | None = None) -> float:
    """Achieved FLOP/s of a ``size`` x ``size`` matmul in ``dtype`` on the default device: the
    practical peak (2 x size^3 FLOPs a call; median of ``repeats`` timed calls after 2 warm-ups).

    Defaults: ``size`` 1,024 on a CPU in the fast profile, 2,048 in the full one, 8,192 on an
    accelerator; ``repeats`` the profile's ``latency_repeats``. On a GPU the float32 figure depends
    on TensorFloat-32 being on or off (``efficient_dl.hardware`` turns it off).
    """
    import keras

    from efficient_dl import measure

    run = profile.current()
    if size is None:
        size = 8_192 if _on_accelerator() else (1_024 if run.name == "fast" else 2_048)
    repeats = run.latency_repeats if repeats is None else repeats
    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        a, b = (tf.cast(tf.constant(m), dtype) for m in (a, b))
        matmul = tf.function(tf.matmul)
        call = lambda: matmul(a, b)[0, 0].numpy()  # noqa: E731  one element back: waits, copies nothing big
    elif backend == "jax":
        import jax

        a, b = (jax.device_put(m).astype(dtype) for m in (a, b))
        matmul = jax.jit(lambda x, y: x @ y)
        call = lambda: matmul(a, b).block_until_ready()  # noqa: E731
    else:
        a, b = (keras.ops.cast(keras.ops.convert_to_tensor(m), dtype) for m in (a, b))
        call = lambda: keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])  # noqa: E731
    seconds = measure.measure_latency(call, warmup=2, repeats=repeats).median_s
    return 2 * size**3 / seconds


def measure_bandwidth(size_bytes: int | None = None, repeats: int | None = None) -> float:
    """Achieved bytes/s of streaming a float32 array through memory: ``y = x + 1`` written into an
    existing buffer, counted as ``2 x size_bytes`` (one read, one write) a call.

    The array must not fit in the caches: the default is 64 MiB on a CPU in the fast profile (twice
    a Zen 4 chiplet's L3), 256 MiB in the full one, 1 GiB on an accelerator. Writing into an existing
    buffer keeps the time of allocating (and, on a CPU, first touching) fresh memory out.
    """
    import keras

    from efficient_dl import measure

    run = profile.current()
    if size_bytes is None:
        size_bytes = 2**30 if _on_accelerator() else (64 if run.name == "fast" else 256) * 2**20
    repeats = run.latency_repeats if repeats is None else repeats
    n = size_bytes // 4
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x, y = tf.random.uniform((n,)), tf.Variable(tf.zeros((n,)))
        @tf.function
        def step():
            y.assign(x + 1.0, read_value=False)

        call = lambda: (step(), y[0].numpy())  # noqa: E731  one element back: waits for the write
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        state = {"x": jnp.zeros((n,), jnp.float32)}
        step = jax.jit(lambda x: x + 1.0, donate_argnums=0)  # donated: written in place

        def call():
            state["x"] = step(state["x"])
            state["x"].block_until_ready()
    else:
        x, y = np.zeros(n, np.float32), np.empty(n, np.float32)
        call = lambda: np.add(x, 1.0, out=y)  # noqa: E731
    seconds = measure.measure_latency(call, warmup=2, repeats=repeats).median_s
    return 2 * n * 4 / seconds


# --- the plot ---------------------------------------------------------------------------


def plot_roofline(ax, peak: float, bandwidth: float, points: dict[str, tuple[float, float]] | None = None,
                  title: str = "Roofline"):
    """Draw a log-log roofline on the matplotlib axes ``ax``: the memory roof (slope 1), the compute
    roof, the ridge point, and ``points`` {label: (FLOPs per byte, achieved FLOP/s)} labelled."""
    points = points or {}
    ridge = ridge_point(peak, bandwidth)
    intensities = [i for i, _ in points.values() if i > 0]
    low = min([ridge / 100, *intensities]) / 2
    high = max([ridge * 100, *intensities]) * 2
    x = np.geomspace(low, high, 200)
    ax.loglog(x, attainable_flops_per_s(x, peak, bandwidth), color="black", linewidth=2, label="attainable")
    ax.axvline(ridge, color="grey", linestyle=":", linewidth=1)
    ax.annotate(f"ridge {ridge:.3g} FLOP/B", (ridge, peak), textcoords="offset points", xytext=(5, -15),
                fontsize=8, color="grey")
    ax.annotate(f"{bandwidth / 1e9:.3g} GB/s", (low * 2, low * 2 * bandwidth), textcoords="offset points",
                xytext=(0, 8), fontsize=8, rotation=0)
    ax.annotate(f"{peak / 1e9:.3g} GFLOP/s", (high / 4, peak), textcoords="offset points", xytext=(-40, 5),
                fontsize=8)
    for label, (intensity, achieved) in points.items():
        ax.plot([intensity], [achieved], "o")
        ax.annotate(label, (intensity, achieved), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("arithmetic intensity (FLOPs per byte)")
    ax.set_ylabel("FLOP/s")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    return ax
