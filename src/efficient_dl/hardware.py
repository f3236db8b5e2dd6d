"""What this notebook runs on, and the tf.distribute strategy that fits it.

A course about efficiency has to say which chip produced a number. ``describe_hardware``
finds a TPU, GPUs or only the CPU, returns a strategy to build models under, and prints
one line about it. It never fails for lack of an accelerator: everything in the course
runs on a CPU, only slower, so a CPU gets a notice on how to get a GPU, not an error.
"""
from __future__ import annotations

import dataclasses
import os
import platform
from typing import Any

from efficient_dl.quiet import filtered_stderr

CPU_NOTICE = (
    "No GPU found: this runs on the CPU, only slower. For a GPU on Colab: Runtime → Change "
    "runtime type → GPU; on JupyterHub: ask your instructor for a GPU server profile."
)
TPU_ENV_HINTS = ("TPU_NAME", "COLAB_TPU_ADDR")
TPU_DEVICE_FILE = "/dev/accel0"


@dataclasses.dataclass(frozen=True)
class HardwareInfo:
    kind: str  # "TPU", "GPU" or "CPU"
    devices: tuple[str, ...]
    cpu_model: str
    cpu_cores: int
    strategy: Any  # a tf.distribute.Strategy
    summary: str


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_cores() -> int:
    # The cores this process may use, which in a container is often fewer than the machine has.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _tpu_expected() -> bool:
    return any(os.environ.get(name) for name in TPU_ENV_HINTS) or os.path.exists(TPU_DEVICE_FILE)


def _connect_tpu():
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
    return strategy, tuple(d.name for d in tf.config.list_logical_devices("TPU"))


def _gpu_name(tf, gpu) -> str:
    try:
        return tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
    except Exception:  # details are best effort; the device itself is what matters
        return gpu.name


def describe_hardware(verbose: bool = True) -> HardwareInfo:
    """Find TPU, GPUs or CPU, pick a distribution strategy, and (if verbose) print one line."""
    # The first device query probes CUDA from C++ and logs its failure on a CPU-only machine.
    with filtered_stderr():
        return _describe_hardware(verbose)


def _describe_hardware(verbose: bool) -> HardwareInfo:
    import tensorflow as tf

    cpu, cores = cpu_model(), cpu_cores()
    notices = []
    kind = None
    if _tpu_expected():
        try:
            strategy, devices = _connect_tpu()
            kind = "TPU"
            summary = f"TPU: {len(devices)} core(s), TPUStrategy"
        except Exception as error:  # a resolver that cannot find its TPU is not fatal
            notices.append(f"A TPU was expected but could not be reached ({type(error).__name__}); falling back.")
    if kind is None:
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            kind = "GPU"
            devices = tuple(_gpu_name(tf, g) for g in gpus)
            if len(gpus) > 1:
                strategy = tf.distribute.MirroredStrategy()
            else:
                strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
            summary = f"GPU: {len(gpus)} × {devices[0]}, {type(strategy).__name__}"
            # Ampere and newer GPUs multiply float32 in TensorFloat-32 (about 3 significant
            # digits) by default: the exercises compare with NumPy to 1e-5, so use full float32.
            # Chapter 06 turns it back on, to show what it buys.
            tf.config.experimental.enable_tensor_float_32_execution(False)
            notices.append("TensorFloat-32 is off: float32 matmuls and convolutions run in full precision, "
                           "so results match NumPy to 1e-5.")
        else:
            kind = "CPU"
            devices = (cpu,)
            strategy = tf.distribute.get_strategy()
            summary = "CPU only, default strategy"
            notices.append(CPU_NOTICE)
    summary += f" (host CPU: {cpu}, {cores} core(s) available)"
    if verbose:
        for notice in notices:
            print(notice)
        print(f"Hardware: {summary}")
    return HardwareInfo(kind, devices, cpu, cores, strategy, summary)
