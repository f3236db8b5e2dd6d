"""Chapters 07-08's compression protocol outside the notebooks: the table in the README.

    python benchmarks/compression.py [--data sample|fashion-mnist|mirror] [--fast] [--out benchmarks/results]

Trains the course's baseline CNN, then makes every variant of chapters 07-08 from it:
TFLite float32, dynamic range, float16 and full int8 (post-training, a representative
dataset of training images); quantization-aware training (TF-MOT, through the tf_keras
bridge) to int8; magnitude pruning to 80 % (TF-MOT) then int8, and pruning-preserving QAT.
Each is measured with one protocol: file size raw and gzipped, accuracy on the held-out
test split, median latency of one LiteRT invoke at batch 1 on one thread, energy per 1,000
predictions (RAPL where readable, otherwise a labelled estimate), and sparsity.

Writes ``compression-<data>.md`` (with the date, the machine and the command) and
``compression-<data>.csv`` to ``--out``, prints the table, and prints each goal with
whether it was met. A benchmark, not a test: it asserts nothing about the numbers.

``--data``: ``sample`` (the 5,000 shipped MNIST digits), ``fashion-mnist`` (the full
70,000 images of Debian's ``dataset-fashion-mnist``), ``mirror`` (full MNIST from
``EFFICIENT_DL_DATA_MIRROR``). ``--fast`` uses the fast run profile's sizes (the test suite).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

TARGET_SPARSITY = 0.80
PRUNING_EPOCHS_PER_FINE_TUNE_EPOCH = 4  # the network must recover from losing 80 % of its weights
CALIBRATION_IMAGES = 500
LATENCY_THREADS = 1
ENERGY_PREDICTIONS = 1_000
# What the issue asks of the full-size run (physical limits and the best published results):
# (label, the variants that may meet it, which ratio, at least this many times smaller, at most
# this many points of accuracy lost).
GOALS = (
    ("int8", ("int8 (post-training)",), "raw_ratio", 3.8, 0.5),
    (f"pruned {TARGET_SPARSITY:.0%} + int8", (f"pruned {TARGET_SPARSITY:.0%} + int8",
                                             f"pruned {TARGET_SPARSITY:.0%} + pruning-preserving QAT int8"),
     "gzip_ratio", 12.0, 1.0),
)


@dataclasses.dataclass
class Row:
    variant: str
    size_bytes: int
    gzip_bytes: int
    accuracy: float
    sparsity: float
    latency_ms: float | None = None
    energy_mj: float | None = None  # millijoules per prediction
    energy_method: str = ""
    raw_ratio: float = 0.0  # float32 TFLite size / this size
    gzip_ratio: float = 0.0  # gzipped float32 Keras file / this file gzipped
    accuracy_lost: float = 0.0  # points of accuracy below the float32 model
    latency_ratio: float | None = None  # this latency / float32 TFLite latency


def load_splits(name: str):
    from efficient_dl import data

    if name == "sample":
        return data.load_mnist(source="sample")
    if name == "mirror":
        return data.load_mnist(source="mirror")
    if name == "fashion-mnist":
        return data.load_fashion_mnist()
    raise SystemExit(f"--data {name!r}: choose sample, fashion-mnist or mirror")


def sparsity_of(weights) -> float:
    """Share of exact zeros among the kernels (tensors of rank 2 or more; biases are kept)."""
    kernels = [np.asarray(w) for w in weights if np.ndim(w) >= 2]
    return float(sum(np.sum(k == 0) for k in kernels) / sum(k.size for k in kernels))


def gzip_file(path: Path) -> int:
    from efficient_dl import measure

    return measure.gzip_size_bytes(path)


def calibration(splits):
    images = splits.x_train[:CALIBRATION_IMAGES]
    return lambda: ([images[i:i + 1]] for i in range(len(images)))


def to_tflite(tf, model, mode: str, splits=None) -> bytes:
    from efficient_dl import litert

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        # A quantization-aware model carries its own ranges (splits=None): no calibration, and the
        # converter's int8-only check would ask for a representative dataset it does not need.
        if splits is not None:
            converter.representative_dataset = calibration(splits)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return litert.convert(converter)


def measure_tflite(variant, model: bytes, x_test, y_test, flops) -> Row:
    from efficient_dl import litert, measure

    accuracy = litert.accuracy(model, x_test, y_test)
    latency = litert.latency(model, x_test[:1], num_threads=LATENCY_THREADS)
    runner = litert.interpreter(model, LATENCY_THREADS)
    with measure.EnergyMeter(flops=flops * ENERGY_PREDICTIONS) as meter:
        litert.predict(runner, x_test[:ENERGY_PREDICTIONS], batch_size=1)
    predictions = min(ENERGY_PREDICTIONS, len(x_test))
    weights = [litert.weight_values(model, name) for name in litert.tensor_types(model).weights]
    return Row(variant, litert.size_bytes(model), litert.gzip_size_bytes(model), accuracy, sparsity_of(weights),
               latency.median_s * 1e3, meter.result.joules / predictions * 1e3,
               ("estimate" if meter.result.is_estimate else meter.result.method))


def fine_tune(tf_keras, model, splits, epochs, callbacks=(), learning_rate=1e-4):
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(splits.x_train, splits.y_train, validation_data=(splits.x_val, splits.y_val), epochs=epochs,
              batch_size=32, callbacks=list(callbacks), verbose=0)
    return model


def prune(tfmot, tf_keras, twin, splits, epochs):
    """TF-MOT magnitude pruning to TARGET_SPARSITY, reached after 60 % of the steps, masks
    updated 20 times on the way (the default frequency of 100 steps stops short on a short run)."""
    steps = epochs * math.ceil(len(splits.y_train) / 32)
    end = max(1, int(0.6 * steps))
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, TARGET_SPARSITY, begin_step=0, end_step=end,
                                                    frequency=max(1, end // 20))
    clone = tf_keras.models.clone_model(twin)  # prune_low_magnitude wraps the layers it is given
    clone.set_weights(twin.get_weights())
    pruned = tfmot.sparsity.keras.prune_low_magnitude(clone, pruning_schedule=schedule)
    # A higher rate than for QAT: the weights that remain must take over from those removed.
    fine_tune(tf_keras, pruned, splits, epochs, [tfmot.sparsity.keras.UpdatePruningStep()], learning_rate=5e-4)
    return tfmot.sparsity.keras.strip_pruning(pruned)


def run(data_name: str, fast: bool, out: Path, epochs: int | None = None,
        fine_tune_epochs: int | None = None) -> list[Row]:
    from efficient_dl import baselines, hardware, measure, profile, quiet

    os.environ["EFFICIENT_DL_PROFILE"] = "fast" if fast else "full"
    run_profile = profile.current()
    with quiet.filtered_stderr():
        import tensorflow as tf
        import tensorflow_model_optimization as tfmot  # switches tf.keras to tf_keras: the bridge is explicit
    tf_keras = baselines.import_tf_keras()
    machine = hardware.describe_hardware(verbose=False)
    splits = load_splits(data_name)
    sizes = dataclasses.replace(run_profile.mnist, epochs=epochs or run_profile.mnist.epochs,
                                fine_tune_epochs=fine_tune_epochs or run_profile.mnist.fine_tune_epochs)
    if sizes.max_train_examples is not None:
        splits = dataclasses.replace(splits, x_train=splits.x_train[:sizes.max_train_examples],
                                     y_train=splits.y_train[:sizes.max_train_examples])
    x_test, y_test = splits.x_test, splits.y_test
    started = time.perf_counter()

    if data_name == "sample" and epochs is None:  # the notebooks' own cached baseline
        baseline = baselines.load_or_train_baseline_cnn(verbose=False)
    else:
        baseline, _ = baselines.train_baseline_cnn(splits, epochs=sizes.epochs)
    flops = measure.count_flops(baseline, (1, 28, 28, 1))
    scratch = Path(tempfile.mkdtemp(prefix="compression-"))
    keras_file = scratch / "baseline.keras"
    baseline.save(keras_file)
    keras_row = Row("Keras float32 (.keras)", keras_file.stat().st_size, gzip_file(keras_file),
                    baselines.accuracy(baseline, x_test, y_test), sparsity_of(baseline.get_weights()))
    rows = [keras_row]
    for mode, label in (("float32", "TFLite float32"), ("dynamic", "dynamic range (int8 weights)"),
                        ("float16", "float16 weights"), ("int8", "int8 (post-training)")):
        rows.append(measure_tflite(label, to_tflite(tf, baseline, mode, splits), x_test, y_test, flops))

    twin = baselines.cnn_in_tf_keras(baseline)
    qat = fine_tune(tf_keras, tfmot.quantization.keras.quantize_model(twin), splits, sizes.fine_tune_epochs)
    rows.append(measure_tflite("int8 (quantization-aware training)", to_tflite(tf, qat, "int8"), x_test, y_test, flops))

    pruned = prune(tfmot, tf_keras, twin, splits, PRUNING_EPOCHS_PER_FINE_TUNE_EPOCH * sizes.fine_tune_epochs)
    pruned_file = scratch / "pruned.keras"
    baselines.cnn_in_keras3(pruned).save(pruned_file)
    rows.append(Row(f"pruned {TARGET_SPARSITY:.0%} (.keras)", pruned_file.stat().st_size, gzip_file(pruned_file),
                    baselines.accuracy(pruned, x_test, y_test), sparsity_of(pruned.get_weights())))
    rows.append(measure_tflite(f"pruned {TARGET_SPARSITY:.0%} + int8", to_tflite(tf, pruned, "int8", splits),
                               x_test, y_test, flops))
    annotated = tfmot.quantization.keras.quantize_annotate_model(pruned)
    pqat = tfmot.quantization.keras.quantize_apply(
        annotated, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
    fine_tune(tf_keras, pqat, splits, sizes.fine_tune_epochs)
    rows.append(measure_tflite(f"pruned {TARGET_SPARSITY:.0%} + pruning-preserving QAT int8",
                               to_tflite(tf, pqat, "int8"), x_test, y_test, flops))

    float_tflite = rows[1]
    for row in rows:
        row.raw_ratio = float_tflite.size_bytes / row.size_bytes
        row.gzip_ratio = keras_row.gzip_bytes / row.gzip_bytes
        row.accuracy_lost = 100 * (keras_row.accuracy - row.accuracy)
        if row.latency_ms is not None:
            row.latency_ratio = row.latency_ms / float_tflite.latency_ms
    write(rows, data_name, splits, machine, out, time.perf_counter() - started, fast, sizes)
    return rows


def _cell(value, form):
    return "—" if value is None else format(value, form)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| variant | bytes | gzip bytes | × smaller (raw, vs TFLite float32) | × smaller (gzip, vs .keras float32) "
             "| accuracy | points lost | sparsity | latency b=1 (ms) | × float32 latency | energy / prediction (mJ) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        energy = "—" if r.energy_mj is None else f"{r.energy_mj:.3g} ({r.energy_method})"
        lines.append(f"| {r.variant} | {r.size_bytes:,} | {r.gzip_bytes:,} | {r.raw_ratio:.2f} | {r.gzip_ratio:.2f} "
                     f"| {r.accuracy:.2%} | {r.accuracy_lost:+.2f} | {r.sparsity:.1%} | {_cell(r.latency_ms, '.3f')} "
                     f"| {_cell(r.latency_ratio, '.2f')} | {energy} |")
    return "\n".join(lines)


def goals(rows: list[Row]) -> list[str]:
    by_name = {r.variant: r for r in rows}
    said = []
    for label, variants, ratio_field, ratio, points in GOALS:
        best = max((by_name[v] for v in variants), key=lambda r: (r.accuracy_lost <= points, getattr(r, ratio_field)))
        achieved = getattr(best, ratio_field)
        met = achieved >= ratio and best.accuracy_lost <= points
        said.append(f"{'met' if met else 'NOT met'}: {label} ≥ {ratio}× smaller ({ratio_field.split('_')[0]}) with "
                    f"≤ {points} point(s) lost — best: {best.variant}, {achieved:.2f}×, {best.accuracy_lost:+.2f} points")
    int8 = by_name["int8 (post-training)"]
    met = int8.latency_ratio is not None and int8.latency_ratio <= 0.5
    said.append(f"{'met' if met else 'NOT met'}: int8 latency ≤ half of float32's at batch 1 — "
                f"{int8.latency_ratio:.2f}× ({int8.latency_ms:.3f} ms against {rows[1].latency_ms:.3f} ms)")
    return said


def write(rows, data_name, splits, machine, out: Path, seconds: float, fast: bool, sizes) -> None:
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/compression.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    header = (f"Date: {datetime.date.today().isoformat()} · machine: {machine.summary} "
              f"({platform.machine()}, {os.cpu_count()} cores) · data: {splits.source}, "
              f"train {len(splits.y_train):,}, test {len(splits.y_test):,} · profile: {'fast' if fast else 'full'}, "
              f"{sizes.epochs} training epoch(s), {sizes.fine_tune_epochs} fine-tuning epoch(s) "
              f"· {seconds / 60:.1f} min · command: `{command}`")
    table = markdown_table(rows)
    said = goals(rows)
    (out / f"compression-{data_name}.md").write_text(f"{header}\n\n{table}\n\n" + "\n".join(f"- {g}" for g in said) + "\n")
    with open(out / f"compression-{data_name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in dataclasses.fields(Row)])
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in rows)
    print(header, table, *said, sep="\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="sample", choices=("sample", "fashion-mnist", "mirror"))
    parser.add_argument("--fast", action="store_true", help="the fast run profile's sizes (as in the tests)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--epochs", type=int, help="training epochs of the baseline (default: the profile's)")
    parser.add_argument("--fine-tune-epochs", type=int, help="QAT epochs; pruning gets 4 times as many")
    args = parser.parse_args()
    run(args.data, args.fast, args.out, args.epochs, args.fine_tune_epochs)


if __name__ == "__main__":
    main()
