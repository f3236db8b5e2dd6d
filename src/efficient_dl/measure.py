"""Measuring a model: parameters, FLOPs, size on disk, latency and energy.

Each measure says what it counts, so a student can compare numbers between notebooks
(and with papers) knowing they mean the same thing.
"""
from __future__ import annotations

import dataclasses
import glob
import math
import os
import re
import statistics
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from efficient_dl import profile

# --- parameters and FLOPs ------------------------------------------------------------


def count_params(model) -> int:
    """All of the model's weights, trainable and not (e.g. batch-norm statistics)."""
    return int(sum(math.prod(w.shape) for w in model.weights))


def flops_by_layer(model, input_shape: tuple[int, ...] | None = None) -> list[tuple[str, str, int]]:
    """``(layer name, layer class, FLOPs)`` for every layer; see ``count_flops`` for what counts.

    Layers of nested models are listed individually, named ``outer/inner``.
    """
    _ensure_built(model, input_shape)
    rows = []
    for layer in model.layers:
        if _is_model(layer):
            rows += [(f"{layer.name}/{name}", cls, n) for name, cls, n in flops_by_layer(layer)]
        else:
            rows.append((layer.name, type(layer).__name__, _layer_flops(layer)))
    return rows


def count_flops(model, input_shape: tuple[int, ...] | None = None) -> int:
    """FLOPs of one forward pass for ONE example (batch size 1), counted analytically.

    Convention, the one most papers use: one multiply-add = 2 FLOPs; a bias adds 1 FLOP
    per output element. Counted per layer from its input and output shapes:

    - Dense: 2·in·out (+ out for the bias), per position if the input has extra axes;
    - Conv1D/2D/3D: 2·(output positions)·(kernel size)·(C_in / groups)·C_out
      (+ output positions · C_out for the bias);
    - DepthwiseConv: 2·(output positions)·(kernel size)·C_in·depth_multiplier (+ bias);
    - SeparableConv: its depthwise part plus the 1×1 pointwise part (+ bias);
    - ConvTranspose: 2·(input positions)·(kernel size)·C_in·C_out (+ bias);
    - BatchNormalization: 2 per element, since at inference it folds into one multiply-add;
    - Embedding: 0, a lookup computes nothing.

    Layers without weights (pooling, activations, Flatten, Dropout, Add...) count 0: they
    do comparisons or element-wise work that is small next to the multiply-adds and does
    not run on the multiply-add units that FLOP counts are meant to load. A layer with
    weights that is not listed raises NotImplementedError rather than being guessed at.

    ``input_shape`` (without the batch axis) builds a model that is not built yet.
    """
    return sum(flops for _, _, flops in flops_by_layer(model, input_shape))


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def _ensure_built(model, input_shape) -> None:
    if not model.built:
        if input_shape is None:
            raise ValueError(
                f"Model {model.name!r} is not built, so its layers' shapes are unknown: pass "
                "input_shape=(...) without the batch axis, or build it by calling it on data."
            )
        model.build((None, *input_shape))


def _shapes(layer) -> tuple[tuple, tuple]:
    try:
        return tuple(layer.input.shape), tuple(layer.output.shape)
    except (AttributeError, ValueError) as error:
        # Shared layers (called more than once) and multi-input layers have no single shape.
        raise ValueError(
            f"Cannot tell the input and output shape of layer {layer.name!r} "
            f"({type(layer).__name__}): {error}"
        ) from error


def _spatial(shape: tuple, data_format: str) -> tuple[tuple, int]:
    """(positions axes, channels) of a conv tensor shape without its batch axis."""
    if data_format == "channels_first":
        return shape[2:], shape[1]
    return shape[1:-1], shape[-1]


def _layer_flops(layer) -> int:
    import keras

    L = keras.layers
    if not layer.weights:
        return 0
    if isinstance(layer, L.Embedding):
        return 0
    in_shape, out_shape = _shapes(layer)
    if isinstance(layer, L.Dense):
        positions = math.prod(in_shape[1:-1])
        macs = positions * in_shape[-1] * layer.units
        bias = positions * layer.units if layer.use_bias else 0
        return 2 * macs + bias
    if isinstance(layer, L.BatchNormalization):
        return 2 * math.prod(out_shape[1:])
    conv_types = (L.Conv1D, L.Conv2D, L.Conv3D)
    depthwise_types = (L.DepthwiseConv1D, L.DepthwiseConv2D)
    separable_types = (L.SeparableConv1D, L.SeparableConv2D)
    transpose_types = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
    if isinstance(layer, conv_types + depthwise_types + separable_types + transpose_types):
        in_positions, c_in = _spatial(in_shape, layer.data_format)
        out_positions, c_out = _spatial(out_shape, layer.data_format)
        n_out, kernel = math.prod(out_positions), math.prod(layer.kernel_size)
        if isinstance(layer, conv_types):
            macs = n_out * kernel * (c_in // layer.groups) * c_out
        elif isinstance(layer, depthwise_types):
            macs = n_out * kernel * c_in * layer.depth_multiplier
        elif isinstance(layer, separable_types):
            depthwise = n_out * kernel * c_in * layer.depth_multiplier
            macs = depthwise + n_out * c_in * layer.depth_multiplier * c_out
        else:  # transposed: every input position scatters a kernel-sized window
            macs = math.prod(in_positions) * kernel * c_in * c_out
        bias = n_out * c_out if layer.use_bias else 0
        return 2 * macs + bias
    raise NotImplementedError(
        f"count_flops does not know layer type {type(layer).__name__} (layer {layer.name!r}), "
        "which has weights; add its formula to efficient_dl.measure._layer_flops."
    )


# --- size on disk --------------------------------------------------------------------


def file_size_bytes(path: str | os.PathLike) -> int:
    return os.path.getsize(path)


def gzip_size_bytes(path: str | os.PathLike) -> int:
    """Size of the file gzipped at level 9: a fair proxy for what a download would cost."""
    # wbits=31 writes the gzip format; streaming keeps a large model file out of memory.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            size += len(compressor.compress(chunk))
    return size + len(compressor.flush())


def model_size_report(model, directory: str | os.PathLike) -> dict[str, Any]:
    """Save ``model`` as ``<directory>/<model name>.keras``; return its path and sizes."""
    path = Path(directory) / f"{model.name}.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return {"path": str(path), "size_bytes": file_size_bytes(path), "gzip_bytes": gzip_size_bytes(path)}


# --- latency -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LatencyResult:
    median_s: float
    p10_s: float
    p90_s: float
    mean_s: float
    stdev_s: float
    repeats: int
    batch_size: int

    @property
    def throughput_per_s(self) -> float:
        """Examples per second at the median latency."""
        return self.batch_size / self.median_s


def _wait_for(result) -> None:
    # TensorFlow and JAX return before the device finishes; reading the value back waits.
    if isinstance(result, (list, tuple)):
        for item in result:
            _wait_for(item)
    elif isinstance(result, dict):
        for item in result.values():
            _wait_for(item)
    elif hasattr(result, "numpy"):
        result.numpy()
    elif hasattr(result, "block_until_ready"):
        result.block_until_ready()


def measure_latency(
    fn: Callable, *args, warmup: int | None = None, repeats: int | None = None, batch_size: int = 1
) -> LatencyResult:
    """Time ``fn(*args)``: ``warmup`` untimed calls (tracing, caches), then ``repeats`` timed ones.

    Defaults come from the run profile (``efficient_dl.profile.current()``). The median
    is the headline figure because a single slow call (garbage collection, another
    process) moves the mean but not the median.
    """
    run = profile.current()
    warmup = run.latency_warmup if warmup is None else warmup
    repeats = run.latency_repeats if repeats is None else repeats
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        _wait_for(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _wait_for(fn(*args))
        times.append(time.perf_counter() - start)
    p10, median, p90 = np.percentile(times, [10, 50, 90])
    return LatencyResult(
        median_s=float(median),
        p10_s=float(p10),
        p90_s=float(p90),
        mean_s=statistics.fmean(times),
        stdev_s=statistics.stdev(times) if repeats > 1 else 0.0,
        repeats=repeats,
        batch_size=batch_size,
    )


# --- energy --------------------------------------------------------------------------

# 1e-11 J per FLOP = 10 pJ/FLOP = 100 GFLOP/s per watt. An order-of-magnitude figure for
# a current accelerator doing dense arithmetic at realistic utilisation: the most
# efficient systems on the Green500 list reach some 50-70 GFLOP/s per watt at the wall
# (FP64, 2024), fp16/bf16 tensor cores do several times better, laptop CPUs far worse.
# Good for comparing two models on the same assumption, not for an absolute figure.
ESTIMATE_JOULES_PER_FLOP = 1e-11
DEFAULT_RAPL_ROOT = "/sys/class/powercap"
# Top-level RAPL domains only (one per CPU package): subdomains such as intel-rapl:0:0
# (cores) are already inside their package's count.
_RAPL_PACKAGE = re.compile(r"intel-rapl:\d+$")


@dataclasses.dataclass(frozen=True)
class EnergyReading:
    joules: float
    seconds: float
    method: str
    is_estimate: bool
    note: str


class _NvmlCounter:
    def __init__(self, nvml):
        self.nvml = nvml
        nvml.nvmlInit()
        try:
            count = nvml.nvmlDeviceGetCount()
            if count < 1:
                raise RuntimeError("no GPU")
            self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.start = self._read()  # fails here on GPUs without an energy counter (pre-Volta)
        except Exception:
            nvml.nvmlShutdown()
            raise

    def _read(self) -> list[int]:
        return [self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]  # mJ

    def stop(self) -> EnergyReading:
        try:
            millijoules = sum(end - start for start, end in zip(self.start, self._read()))
        finally:
            self.nvml.nvmlShutdown()
        n = len(self.handles)
        return EnergyReading(
            millijoules / 1000.0, 0.0, "NVML GPU energy counter", False,
            f"Measured by the GPU's energy counter, summed over {n} GPU(s); the CPU, memory "
            "and the rest of the machine are not included.",
        )


class _RaplCounter:
    def __init__(self, root: str | os.PathLike):
        self.domains = sorted(
            Path(d) for d in glob.glob(os.path.join(glob.escape(str(root)), "intel-rapl:*"))
            if _RAPL_PACKAGE.search(d)
        )
        if not self.domains:
            raise FileNotFoundError(f"no RAPL package domains under {root}")
        self.start = self._read()  # PermissionError where energy_uj is root-only (the usual case)

    def _read(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def stop(self) -> EnergyReading:
        microjoules = 0
        for domain, start, end in zip(self.domains, self.start, self._read()):
            if end < start:  # the counter wrapped around during the measurement
                end += int((domain / "max_energy_range_uj").read_text())
            microjoules += end - start
        return EnergyReading(
            microjoules / 1e6, 0.0, "Intel RAPL CPU package counter", False,
            f"Measured by RAPL for {len(self.domains)} CPU package(s): the whole package, not just "
            "this process; memory (DRAM) and any GPU are not included.",
        )


class EnergyMeter:
    """Energy used while the ``with`` block runs, from the best source available.

    In order: NVML's GPU energy counter (GPUs from Volta on), Intel RAPL's CPU package
    counter, an estimate from ``flops`` at ``ESTIMATE_JOULES_PER_FLOP``, or nothing
    (``joules`` is nan). ``meter.result.note`` says which, and what it includes.

    ``nvml``: "auto" imports pynvml; None skips NVML; or pass a stand-in module (tests).
    ``rapl_root``: where the powercap folders are (a test points it at a fake one).
    """

    def __init__(self, flops: float | None = None, *, nvml: Any = "auto", rapl_root: str | os.PathLike = DEFAULT_RAPL_ROOT):
        self.flops = flops
        self.nvml = nvml
        self.rapl_root = rapl_root
        self._counter = None
        self._result: EnergyReading | None = None

    def _open_counter(self):
        if self.nvml is not None:
            try:
                module = self.nvml
                if module == "auto":
                    import pynvml as module
                return _NvmlCounter(module)
            except Exception:  # no package, no driver, no GPU or no energy counter
                pass
        try:
            return _RaplCounter(self.rapl_root)
        except (OSError, ValueError):
            return None

    def __enter__(self) -> "EnergyMeter":
        self._result = None
        self._counter = self._open_counter()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        seconds = time.perf_counter() - self._start
        if self._counter is not None:
            reading = dataclasses.replace(self._counter.stop(), seconds=seconds)
        elif self.flops is not None:
            reading = EnergyReading(
                self.flops * ESTIMATE_JOULES_PER_FLOP, seconds, "estimate from FLOPs", True,
                f"ESTIMATE, not a measurement: no energy counter is readable here, so this is "
                f"{self.flops:,.0f} FLOPs × {ESTIMATE_JOULES_PER_FLOP:g} J/FLOP (an assumed "
                f"{1 / ESTIMATE_JOULES_PER_FLOP / 1e9:g} GFLOP/s per watt).",
            )
        else:
            reading = EnergyReading(
                float("nan"), seconds, "none", True,
                "No energy counter is readable here (no NVIDIA GPU, RAPL absent or root-only) and "
                "no flops= was given to estimate from.",
            )
        self._result = reading

    @property
    def result(self) -> EnergyReading:
        if self._result is None:
            raise RuntimeError("EnergyMeter.result is available after the with block ends.")
        return self._result
