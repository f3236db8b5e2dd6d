"""Training speed (chapter 06): examples per second of a Keras training step, measured one way.

Chapter 06 asks what each speed-up buys: a better tf.data pipeline, mixed precision, XLA, a
bigger batch. Those answers are only comparable if every configuration is timed alike, so
``measure_training_throughput`` fixes the protocol:

- Keras ``fit`` itself runs the steps (what a student runs), ``warmup_steps + steps`` per repeat;
- a callback reads ``time.perf_counter()`` at the end of every batch; a step's time is the gap
  between two batch ends, so it includes waiting for the next batch (a slow pipeline shows) and
  the host reading the loss back (the device has finished the step's forward pass by then);
- the first ``warmup_steps`` of each repeat are dropped (tracing, XLA compilation, a cache
  filling); the first step of all is reported apart as ``first_step_s``, because compilation is
  what eats XLA's gain in a short run;
- the median over all kept steps is the headline, with the 10th and 90th percentiles beside it.

``cpu_low_precision_units`` says, from ``/proc/cpuinfo``, what the CPU has for bfloat16 and
float16: on a CPU, mixed precision is faster or ~100x slower depending on exactly that.
"""
from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np

from efficient_dl import profile

# Separate ``fit`` calls per measurement, by run profile: repeats catch a slow phase of the
# machine (another process, a frequency change) that one run would take for the model's speed.
# Warm-up and timed steps per repeat are the profile's latency_warmup and latency_repeats.
REPEATS = {"fast": 1, "full": 3}
CPUINFO = "/proc/cpuinfo"


@dataclasses.dataclass(frozen=True)
class Throughput:
    """One configuration's training speed: examples per second at the median step time."""

    configuration: str
    device: str
    batch_size: int
    examples_per_s: float
    median_step_s: float
    p10_step_s: float
    p90_step_s: float
    first_step_s: float  # the very first step of the first repeat: tracing and compilation
    steps: int  # timed steps per repeat (warm-up excluded)
    repeats: int


def _batch_end_clock():
    """A Keras callback noting ``perf_counter()`` when training starts and at every batch end.

    Keras 3 calls ``on_train_batch_end`` once per step when ``steps_per_execution`` is 1, after
    turning the step's logs into Python numbers: the host has the step's loss by then.
    """
    import keras

    class BatchEndClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times: list[float] = []

        def on_train_begin(self, logs=None):
            self.times = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    return BatchEndClock()


def measure_training_throughput(
    model,
    data,
    *,
    batch_size: int,
    steps: int | None = None,
    warmup_steps: int | None = None,
    repeats: int | None = None,
    configuration: str = "",
    device: str | None = None,
) -> Throughput:
    """Examples per second of ``model.fit`` on ``data`` (see the module docstring for how).

    ``model``: a compiled Keras 3 model (``steps_per_execution=1``, the default).
    ``data``: ``(x, y)`` NumPy arrays, which are batched here and repeated as often as the
    steps need; or a ``tf.data.Dataset`` that is already batched with ``batch_size`` (repeated
    here if it is finite), so that the pipeline's own cost is part of what is timed.
    Defaults: ``warmup_steps`` and ``steps`` are the run profile's ``latency_warmup`` and
    ``latency_repeats``; ``repeats`` is ``REPEATS[profile name]``. ``device``: by default a
    short description of where Keras ran (GPU name, TPU, or the CPU model).
    """
    run = profile.current()
    steps = run.latency_repeats if steps is None else steps
    warmup_steps = run.latency_warmup if warmup_steps is None else warmup_steps
    repeats = REPEATS.get(run.name, 1) if repeats is None else repeats
    if steps < 1 or warmup_steps < 0 or repeats < 1 or batch_size < 1:
        raise ValueError(f"need steps >= 1, warmup_steps >= 0, repeats >= 1 and batch_size >= 1; got steps={steps}, "
                         f"warmup_steps={warmup_steps}, repeats={repeats}, batch_size={batch_size}")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
        raise ValueError(f"Model {model.name!r} is not compiled: call model.compile(optimizer=..., loss=...) first.")
    if getattr(model, "steps_per_execution", 1) != 1:
        raise ValueError(
            f"Model {model.name!r} runs {model.steps_per_execution} steps per execution, so Keras calls the callback "
            "once per group of steps and single steps cannot be timed: compile it with steps_per_execution=1.")
    per_repeat = warmup_steps + steps
    dataset = _repeating(data, batch_size, per_repeat)
    kept, first_step_s = [], None
    clock = _batch_end_clock()
    for _ in range(repeats):
        model.fit(dataset, epochs=1, steps_per_epoch=per_repeat, shuffle=False, callbacks=[clock], verbose=0)
        gaps = np.diff(clock.times)
        if len(gaps) != per_repeat:
            raise RuntimeError(
                f"Keras reported {len(gaps)} batch ends for {per_repeat} steps: the data ran out (a dataset with "
                "fewer batches than the steps?) or Keras grouped steps; pass more data or fewer steps.")
        if first_step_s is None:
            first_step_s = float(gaps[0])
        kept.extend(gaps[warmup_steps:])
    p10, median, p90 = np.percentile(kept, [10, 50, 90])
    return Throughput(
        configuration=configuration, device=device or default_device(), batch_size=batch_size,
        examples_per_s=batch_size / float(median), median_step_s=float(median), p10_step_s=float(p10),
        p90_step_s=float(p90), first_step_s=first_step_s, steps=steps, repeats=repeats,
    )


def _is_tf_dataset(data) -> bool:
    # Without importing TensorFlow: on the JAX backend it may not be installed at all.
    if sys.modules.get("tensorflow") is None:
        return False
    import tensorflow as tf

    return isinstance(data, tf.data.Dataset)


def _repeating(data, batch_size: int, steps: int):
    """What ``fit`` gets: enough batches for any number of steps, fed the way Keras feeds them."""
    import keras

    if _is_tf_dataset(data):
        import tensorflow as tf

        if data.cardinality() == tf.data.INFINITE_CARDINALITY:
            return data
        return data.repeat()
    if not (isinstance(data, tuple) and len(data) == 2):
        raise TypeError(f"data must be a tuple (x, y) of NumPy arrays or a batched tf.data.Dataset, "
                        f"not {type(data).__name__}.")
    x, y = (np.asarray(a) for a in data)
    if len(x) != len(y) or len(x) < batch_size:
        raise ValueError(f"need as many labels as examples and at least batch_size={batch_size} of them; "
                         f"got {len(x)} examples and {len(y)} labels.")
    if keras.backend.backend() == "tensorflow":
        # What Keras builds from arrays itself on TensorFlow: a tf.data pipeline, here endless.
        import tensorflow as tf

        return (tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch_size, drop_remainder=True)
                .prefetch(tf.data.AUTOTUNE))
    return _cycling_batches(x, y, batch_size, steps)


def _cycling_batches(x, y, batch_size, steps):
    """NumPy batches in order, wrapping round: what Keras slices from arrays on JAX, ``steps`` of them."""
    import keras

    class CyclingBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.per_pass = len(x) // batch_size

        def __len__(self):
            return steps  # one fit call's worth; every call starts again at index 0

        def __getitem__(self, index):
            start = (index % self.per_pass) * batch_size
            return x[start:start + batch_size], y[start:start + batch_size]

    return CyclingBatches()


def default_device() -> str:
    """Where Keras runs: the GPU's name, "TPU ...", or the CPU's model name."""
    import keras

    from efficient_dl import hardware

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        first = jax.devices()[0]
        if first.platform != "cpu":
            return f"{first.device_kind} ({first.platform.upper()}, JAX)"
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_logical_devices("TPU"):
            return "TPU"
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            try:
                return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
            except Exception:  # details are best effort
                return gpus[0].name
    return hardware.cpu_model()


# --- tables ----------------------------------------------------------------------------


def speedup_rows(results: list[Throughput], baseline: str | None = None) -> list[dict]:
    """One dict per result, with ``speedup``: its examples/s over the baseline configuration's.

    The baseline (default: the first result's configuration) is compared at the same batch size
    and device where it was measured there, otherwise its first row is used.
    """
    if not results:
        return []
    baseline = results[0].configuration if baseline is None else baseline
    base_rows = [r for r in results if r.configuration == baseline]
    if not base_rows:
        raise ValueError(f"No result has configuration {baseline!r}; the configurations are "
                         f"{sorted({r.configuration for r in results})}.")
    rows = []
    for r in results:
        same = [b for b in base_rows if b.batch_size == r.batch_size and b.device == r.device]
        reference = (same or base_rows)[0]
        rows.append({**dataclasses.asdict(r), "baseline": baseline,
                     "speedup": r.examples_per_s / reference.examples_per_s})
    return rows


def speedup_table(results: list[Throughput], baseline: str | None = None) -> str:
    """A Markdown table (readable as plain text): examples/s and speed-up over ``baseline``."""
    lines = ["| configuration | device | batch | examples/s | speed-up | first step (s) |",
             "|---|---|---:|---:|---:|---:|"]
    for row in speedup_rows(results, baseline):
        lines.append(f"| {row['configuration']} | {row['device']} | {row['batch_size']} | "
                     f"{row['examples_per_s']:,.0f} | {row['speedup']:.2f}x | {row['first_step_s']:.2f} |")
    return "\n".join(lines)


# --- reading a TensorBoard profile -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProfileBreakdown:
    """Where the profiled steps' time went, in microseconds of self time, from a trace that Keras'
    ``TensorBoard(profile_batch=...)`` callback wrote: the "framework op stats" of TensorBoard's
    Profile tab, added up in two groups."""

    trace: str  # the .xplane.pb file read
    input_pipeline_us: float  # tf.data: its stages and the operations of its map functions (decoding...)
    model_us: float  # the operations of Keras' training step (forward, backward, optimizer)
    idle_us: float  # threads with nothing to do
    top_operations: tuple[tuple[str, float], ...]  # the costliest operation types, by self time

    @property
    def input_share(self) -> float:
        """tf.data's share of the busy time."""
        busy = self.input_pipeline_us + self.model_us
        return self.input_pipeline_us / busy if busy else 0.0

    @property
    def bound(self) -> str:
        """"input" if preparing the batches took longer than training on them, else "compute": a
        pipeline goes at the pace of its slowest stage, however well prefetching overlaps them."""
        return "input" if self.input_pipeline_us > self.model_us else "compute"


# Keras 3 runs its training step as one tf.function, whose operations are all named below its
# call (StatefulPartitionedCall/...); tf.data's stages are of type "Dataset" and the operations
# of its map functions carry their own names (DecodePng, Cast...).
_TRAINING_STEP_PREFIX = "StatefulPartitionedCall"


def read_profile(log_dir, top: int = 5) -> ProfileBreakdown:
    """The newest trace under ``log_dir`` turned into a ``ProfileBreakdown``.

    TensorFlow converts a trace into TensorBoard's tables with a converter that it ships but does
    not export (``tensorflow.python.profiler.internal``, what the Profile tab's plugin calls); its
    ``framework_op_stats`` table lists every operation with its self time. Raises
    ``FileNotFoundError`` if no trace was written.
    """
    from pathlib import Path

    from efficient_dl.quiet import filtered_stderr

    traces = sorted(Path(log_dir).rglob("*.xplane.pb"), key=lambda path: path.stat().st_mtime)
    if not traces:
        raise FileNotFoundError(
            f"No profile trace (*.xplane.pb) under {log_dir}: pass keras.callbacks.TensorBoard(log_dir, "
            "profile_batch=(first, last)) to fit, with the tensorboard package installed, and train past 'last'.")
    with filtered_stderr():
        import json

        from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

        table, converted = _pywrap_profiler_plugin.xspace_to_tools_data([str(traces[-1])], "framework_op_stats")
    if not converted:
        raise RuntimeError(f"TensorFlow could not read the trace {traces[-1]}: {table[:200]!r}")
    first = json.loads(table)[0]  # the first table counts the idle time too
    columns = [column["id"] for column in first["cols"]]
    kind, name, self_time = columns.index("type"), columns.index("operation"), columns.index("total_self_time")
    idle = pipeline = model = 0.0
    by_type: dict[str, float] = {}
    for row in first["rows"]:
        values = [cell["v"] for cell in row["c"]]
        microseconds = float(values[self_time])
        if values[kind] == "IDLE":
            idle += microseconds
            continue
        if str(values[name]).startswith(_TRAINING_STEP_PREFIX):
            model += microseconds
        else:
            pipeline += microseconds
        by_type[values[kind]] = by_type.get(values[kind], 0.0) + microseconds
    ranked = tuple(sorted(by_type.items(), key=lambda item: -item[1])[:top])
    return ProfileBreakdown(str(traces[-1]), pipeline, model, idle, ranked)


# --- what the CPU has for low precision --------------------------------------------------

# x86 flags (Linux names) and Arm features that matter for training in low precision.
LOW_PRECISION_FLAGS = (
    "amx_bf16", "amx_fp16", "amx_int8", "amx_tile",  # Intel AMX: matrix units (Sapphire Rapids on)
    "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "avx512f", "f16c",  # vector instructions
    "bf16", "fphp", "asimdhp", "i8mm", "sme",  # Arm: BF16, half-precision arithmetic, int8 matmul, SME
)


def _cpuinfo_flags(text: str) -> set[str]:
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def cpu_low_precision_units(cpuinfo_text: str | None = None) -> dict:
    """What this CPU has for bfloat16 and float16 arithmetic, and one sentence saying what follows.

    Read from ``/proc/cpuinfo`` (Linux) unless ``cpuinfo_text`` is given (tests). Returns
    ``{"cpu", "source", "flags": {flag: bool}, "bfloat16", "float16", "verdict"}``, where
    ``bfloat16`` and ``float16`` are "matrix units", "vector instructions", "none" or "unknown".
    """
    from efficient_dl import hardware

    source = "given text" if cpuinfo_text is not None else CPUINFO
    if cpuinfo_text is None:
        try:
            with open(CPUINFO, encoding="utf-8") as f:
                cpuinfo_text = f.read()
        except OSError:
            cpuinfo_text = None
    found = _cpuinfo_flags(cpuinfo_text) if cpuinfo_text else set()
    if not found:
        return {"cpu": hardware.cpu_model(), "source": None, "flags": {}, "bfloat16": "unknown",
                "float16": "unknown",
                "verdict": ("Could not tell which low-precision instructions this CPU has (no readable "
                            "/proc/cpuinfo): measure mixed_bfloat16 and mixed_float16 before trusting either.")}
    flags = {name: name in found for name in LOW_PRECISION_FLAGS}
    arm = "asimd" in found  # Arm's SIMD feature; x86 lists sse instead

    def level(matrix: tuple[str, ...], vector: tuple[str, ...]) -> str:
        if any(flags[f] for f in matrix):
            return "matrix units"
        return "vector instructions" if any(flags[f] for f in vector) else "none"

    bfloat16 = level(("amx_bf16", "sme"), ("avx512_bf16", "bf16"))
    float16 = level(("amx_fp16",), ("fphp", "asimdhp") if arm else ("avx512_fp16",))
    matrix_name, bf16_name = ("SME", "BF16 instructions") if arm else ("AMX", "AVX-512 BF16 instructions")
    bf_says = {
        "matrix units": f"has {matrix_name} matrix units for bfloat16: bfloat16 matmuls can be several times "
                        "faster than float32",
        "vector instructions": f"has {bf16_name} but no {matrix_name}: bfloat16 matmuls can be faster than float32",
        "none": "has no bfloat16 instructions: bfloat16 is converted to float32 to compute, so expect no gain",
    }[bfloat16]
    fp_says = {
        "matrix units": "float16 has matrix units too",
        "vector instructions": "float16 has arithmetic instructions, but the libraries may not use them for "
                               "training, so measure before relying on it",
        "none": "float16 has no fast path and will be much slower",
    }[float16]
    return {"cpu": hardware.cpu_model() if source == CPUINFO else "", "source": source, "flags": flags,
            "bfloat16": bfloat16, "float16": float16, "verdict": f"This CPU {bf_says}; {fp_says}."}
