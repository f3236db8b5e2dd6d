"""Chapter 06's training-speed measurements outside the notebooks: what mixed precision and XLA buy.

    python benchmarks/accelerators.py [--data sample|synthetic] [--fast] [--batch-sizes 64,256] [--out benchmarks/results]
    KERAS_BACKEND=jax python benchmarks/accelerators.py ...   (needs JAX; TensorFlow need not be installed)

Trains the course's baseline CNN (``efficient_dl.baselines.baseline_cnn``, rebuilt under each
dtype policy with float32 logits, as mixed precision requires) on MNIST-shaped data and times it
with ``efficient_dl.training_speed.measure_training_throughput``, one protocol for all:

- float32, without and with XLA (``jit_compile=True``);
- mixed precision, without and with XLA: ``mixed_bfloat16`` on a CPU or TPU, ``mixed_float16``
  and ``mixed_bfloat16`` on a GPU (a CPU without float16 units runs float16 ~100x slower);
- on JAX every step is compiled by XLA anyway, so there is one configuration per policy.

at the run profile's batch sizes from 16 up (or ``--batch-sizes``): steps of 1 or 4 examples are
bound by per-step overhead on every device and say nothing about arithmetic. Writes
``accelerators-<backend>-<cpu|gpu|tpu>.md`` (date, device, backend and versions, command) and
``.csv`` to ``--out``, prints the table, and says whether the issue's goal (mixed precision + XLA
at least 2.5x faster per step than float32 on a modern GPU) is met, not met, or not applicable on
this device. A benchmark, not a test: it asserts nothing about the numbers.

``--data``: ``sample`` (the 5,000 shipped MNIST digits' 3,500 training images) or ``synthetic``
(random images of the same shape and count: no data package needed). ``--fast`` uses the fast
run profile's steps and batch sizes (the test suite).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

GOAL_SPEEDUP = 2.5  # mixed precision + XLA over float32, per training step, on a modern GPU
MODERN_GPU_CAPABILITY = (7, 0)  # Volta and newer: tensor cores for float16
SYNTHETIC_EXAMPLES = 3_500  # as many as the sample's training split
MIN_BATCH_SIZE = 16  # smaller default batches measure per-step overhead, not arithmetic


@dataclasses.dataclass(frozen=True)
class Configuration:
    name: str
    policy: str
    jit_compile: bool | None  # None: the backend always compiles (JAX)


@dataclasses.dataclass
class Row:
    configuration: str
    policy: str
    xla: str
    device: str
    batch_size: int
    examples_per_s: float
    median_step_ms: float
    p10_step_ms: float
    p90_step_ms: float
    first_step_s: float
    steps: int
    repeats: int
    speedup: float = 0.0  # examples/s over float32's at the same batch size


def device_kind() -> str:
    """"gpu", "tpu" or "cpu": where Keras's default device is, without importing an absent backend."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        platform_ = jax.devices()[0].platform
        return platform_ if platform_ in ("gpu", "tpu") else "cpu"
    import tensorflow as tf

    if tf.config.list_logical_devices("TPU"):
        return "tpu"
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def configurations(backend: str, kind: str) -> list[Configuration]:
    mixed = ["mixed_float16", "mixed_bfloat16"] if kind == "gpu" else ["mixed_bfloat16"]
    if backend == "jax":
        return [Configuration(f"{p} (XLA, always on JAX)", p, None) for p in ["float32", *mixed]]
    return [Configuration(f"{p}{' + XLA' if xla else ''}", p, xla) for p in ["float32", *mixed] for xla in (False, True)]


def build(policy: str, jit_compile: bool | None):
    """The baseline CNN with every layer under ``policy`` but float32 logits, compiled as the
    baseline is (Adam, cross-entropy from logits) with ``jit_compile`` given explicitly: Keras's
    "auto" turns XLA on by itself on a TensorFlow GPU, which would blur the comparison."""
    import keras

    from efficient_dl.baselines import mnist_cnn

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)  # the model's own policy: mixed_float16 gets loss scaling
    try:
        model = keras.models.clone_model(
            mnist_cnn.baseline_cnn(),
            clone_function=lambda layer: type(layer).from_config(
                {**layer.get_config(), "dtype": "float32" if layer.name == "logits" else policy}))
    finally:
        keras.config.set_dtype_policy(previous)
    options = {} if jit_compile is None else {"jit_compile": jit_compile}
    model.compile(optimizer=keras.optimizers.Adam(mnist_cnn.LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"], **options)
    return model


def load_data(name: str):
    if name == "sample":
        from efficient_dl import data

        splits = data.load_mnist(source="sample")
        return splits.x_train, splits.y_train, splits.source
    if name == "synthetic":
        rng = np.random.default_rng(0)
        x = rng.random((SYNTHETIC_EXAMPLES, 28, 28, 1), dtype=np.float32)
        return x, rng.integers(0, 10, SYNTHETIC_EXAMPLES), f"synthetic ({SYNTHETIC_EXAMPLES:,} random 28x28x1 images)"
    raise SystemExit(f"--data {name!r}: choose sample or synthetic")


def run(data_name: str, fast: bool, out: Path, batch_sizes: tuple[int, ...] | None = None) -> list[Row]:
    os.environ["EFFICIENT_DL_PROFILE"] = "fast" if fast else "full"
    from efficient_dl import profile, training_speed  # before TensorFlow: quiets its logging

    import keras

    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        raise SystemExit(f"KERAS_BACKEND={backend}: this benchmark runs on tensorflow or jax.")
    run_profile = profile.current()
    batch_sizes = batch_sizes or tuple(b for b in run_profile.batch_sizes if b >= MIN_BATCH_SIZE)
    kind = device_kind()
    device = training_speed.default_device()
    x, y, source = load_data(data_name)
    started = time.perf_counter()
    results = []
    for config in configurations(backend, kind):
        for batch_size in batch_sizes:
            keras.utils.set_random_seed(0)
            model = build(config.policy, config.jit_compile)
            results.append(training_speed.measure_training_throughput(
                model, (x, y), batch_size=batch_size, configuration=config.name, device=device))
            keras.backend.clear_session()
            print(f"  {config.name}, batch {batch_size}: {results[-1].examples_per_s:,.0f} examples/s", flush=True)
    by_name = {c.name: c for c in configurations(backend, kind)}
    rows = []
    for speed in training_speed.speedup_rows(results):
        config = by_name[speed["configuration"]]
        rows.append(Row(
            speed["configuration"], config.policy,
            "always (JAX)" if config.jit_compile is None else ("on" if config.jit_compile else "off"),
            speed["device"], speed["batch_size"], speed["examples_per_s"], speed["median_step_s"] * 1e3,
            speed["p10_step_s"] * 1e3, speed["p90_step_s"] * 1e3, speed["first_step_s"], speed["steps"],
            speed["repeats"], speed["speedup"]))
    write(rows, backend, kind, device, source, run_profile, out, time.perf_counter() - started)
    return rows


def markdown_table(rows: list[Row]) -> str:
    lines = ["| configuration | XLA | batch | examples/s | median step (ms) | p10-p90 (ms) | × float32 | first step (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.configuration} | {r.xla} | {r.batch_size} | {r.examples_per_s:,.0f} | {r.median_step_ms:.2f} "
                     f"| {r.p10_step_ms:.2f}-{r.p90_step_ms:.2f} | {r.speedup:.2f} | {r.first_step_s:.2f} |")
    return "\n".join(lines)


def _gpu_is_modern(backend: str) -> bool | None:
    """Compute capability >= 7.0 (tensor cores), or None where it cannot be read."""
    try:
        if backend == "jax":
            import jax

            capability = tuple(int(p) for p in str(jax.devices()[0].compute_capability).split("."))
        else:
            import tensorflow as tf

            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            capability = tuple(details["compute_capability"])
    except Exception:  # best effort: an unknown GPU is judged by its numbers alone
        return None
    return capability >= MODERN_GPU_CAPABILITY


def goal(rows: list[Row], backend: str, kind: str) -> str:
    """The issue's goal line, judged at the largest batch (where a GPU's arithmetic dominates)."""
    largest = max(r.batch_size for r in rows)
    mixed_xla = [r for r in rows if r.batch_size == largest and r.policy != "float32" and r.xla != "off"]
    best = max(mixed_xla, key=lambda r: r.speedup)
    measured = f"best: {best.configuration}, {best.speedup:.2f}x float32's examples/s at batch {largest}"
    said = f"mixed precision + XLA ≥ {GOAL_SPEEDUP}x float32 per training step on a modern GPU — {measured}"
    if kind != "gpu":
        return f"not applicable on this device ({kind.upper()}): {said}"
    if _gpu_is_modern(backend) is False:
        return f"not applicable on this device (GPU older than compute capability 7.0, no tensor cores): {said}"
    return f"{'met' if best.speedup >= GOAL_SPEEDUP else 'NOT met'}: {said}"


def versions(backend: str) -> str:
    import keras

    if backend == "jax":
        import jax
        import jaxlib

        return f"keras {keras.__version__}, jax {jax.__version__}, jaxlib {jaxlib.__version__}"
    import tensorflow as tf

    return f"keras {keras.__version__}, tensorflow {tf.__version__}"


def write(rows, backend, kind, device, source, run_profile, out: Path, seconds: float) -> None:
    from efficient_dl import hardware, training_speed

    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python benchmarks/accelerators.py", *(shlex.quote(a) for a in sys.argv[1:])])
    if os.environ.get("KERAS_BACKEND"):
        command = f"KERAS_BACKEND={os.environ['KERAS_BACKEND']} {command}"
    first = rows[0]
    host = f"{hardware.cpu_cores()} core(s) available, {platform.machine()}"
    if kind != "cpu":
        host = f"host CPU {hardware.cpu_model()}, {host}"
    header = (f"Date: {datetime.date.today().isoformat()} · device: {device} ({kind.upper()}; {host}) · backend: "
              f"{backend} ({versions(backend)}) · data: {source} · profile: {run_profile.name}, {first.steps} timed "
              f"steps after warm-up × {first.repeats} repeat(s) per row · {seconds / 60:.1f} min · command: `{command}`")
    notes = []
    if kind == "cpu":
        notes.append(training_speed.cpu_low_precision_units()["verdict"])
    if backend == "jax":
        notes.append("On JAX every training step is compiled by XLA (jax.jit), so there is no separate "
                     "'+ XLA' configuration: each row is already XLA.")
    said = [goal(rows, backend, kind)]
    table = markdown_table(rows)
    stem = f"accelerators-{backend}-{kind}"
    text = f"{header}\n\n{table}\n\n" + "".join(f"- {line}\n" for line in said + notes)
    (out / f"{stem}.md").write_text(text)
    with open(out / f"{stem}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in dataclasses.fields(Row)])
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in rows)
    print(header, table, *said, *notes, sep="\n")


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give batch sizes as integers separated by commas, e.g. 64,256")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes must be at least 1")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="sample", choices=("sample", "synthetic"))
    parser.add_argument("--fast", action="store_true", help="the fast run profile's steps and batch sizes (the tests)")
    parser.add_argument("--batch-sizes", type=_batch_sizes, help="comma-separated, e.g. 64,256 (default: the profile's)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    run(args.data, args.fast, args.out, args.batch_sizes)


if __name__ == "__main__":
    main()
