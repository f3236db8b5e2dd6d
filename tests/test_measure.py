"""efficient_dl.measure: FLOPs against hand counts and TensorFlow's profiler, sizes, latency, energy."""
import math
import os
import time

import numpy as np
import pytest

from efficient_dl import measure

keras = pytest.importorskip("keras")


# --- parameters and FLOPs ------------------------------------------------------------


def test_dense_flops_by_hand():
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(100)])
    assert measure.count_flops(model) == 2 * 784 * 100 + 100


def test_conv_flops_by_hand():
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, padding="same")])
    assert measure.count_flops(model) == 2 * 28 * 28 * 9 * 1 * 32 + 28 * 28 * 32


def test_other_layers_by_hand():
    model = keras.Sequential([
        keras.Input((10, 10, 4)),
        keras.layers.DepthwiseConv2D(3, use_bias=False),  # -> 8x8x4
        keras.layers.SeparableConv2D(6, 3, padding="same"),  # -> 8x8x6
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(8, 1, groups=2),  # -> 8x8x8
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, use_bias=False),
    ])
    expected = [
        2 * 64 * 9 * 4,
        2 * (64 * 9 * 4 + 64 * 4 * 6) + 64 * 6,
        2 * 64 * 6,
        2 * 64 * 1 * (6 // 2) * 8 + 64 * 8,
        0,
        2 * 8 * 3,
    ]
    assert [flops for _, _, flops in measure.flops_by_layer(model)] == expected
    assert measure.count_flops(model) == sum(expected)


def test_nested_model_and_unbuilt_model():
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)], name="head")
    x = keras.Input((7,))
    outer = keras.Model(x, inner(keras.layers.Dense(5, name="body")(x)))
    counted = [(name, cls, flops) for name, cls, flops in measure.flops_by_layer(outer) if flops]
    assert counted[0] == ("body", "Dense", 2 * 7 * 5 + 5)
    assert counted[1][0].startswith("head/") and counted[1][1:] == ("Dense", 2 * 5 * 2 + 2)
    assert measure.count_flops(outer) == (2 * 7 * 5 + 5) + (2 * 5 * 2 + 2)

    unbuilt = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="input_shape"):
        measure.count_flops(unbuilt)
    assert measure.count_flops(unbuilt, input_shape=(3,)) == 2 * 3 * 4 + 4


def test_unknown_layer_with_weights_is_named():
    model = keras.Sequential([keras.Input((4,)), keras.layers.LayerNormalization()])
    with pytest.raises(NotImplementedError, match="LayerNormalization"):
        measure.count_flops(model)


def test_weightless_layers_count_zero():
    model = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.MaxPooling2D(), keras.layers.ReLU(), keras.layers.Flatten()])
    assert measure.count_flops(model) == 0


def _profiler_flops_by_op(model, input_shape):
    """TensorFlow's own FLOP count for one example, per op type."""
    import tensorflow as tf

    @tf.function
    def forward(x):
        return model(x, training=False)

    graph = forward.get_concrete_function(tf.TensorSpec((1, *input_shape), tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    root = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options)
    by_op = {}
    stack = list(root.children)
    while stack:  # the "op" view nests op types; each node's own count is float_ops
        node = stack.pop()
        by_op[node.name] = by_op.get(node.name, 0) + node.float_ops
        stack += node.children
    return by_op


def test_flops_agree_with_tensorflow_profiler():
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(4, 3, strides=2),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    by_op = _profiler_flops_by_op(model, (28, 28, 1))
    rows = measure.flops_by_layer(model)
    biases = 28 * 28 * 8 + 6 * 6 * 4 + 10  # one add per output element of each biased layer
    # The multiply-adds: the profiler counts Conv2D and MatMul as 2 FLOPs per multiply-add too.
    assert by_op["Conv2D"] + by_op["MatMul"] == sum(f for _, _, f in rows) - biases
    # It counts bias adds as we do; it also counts MaxPool's comparisons, which we count 0.
    assert by_op["BiasAdd"] == biases
    assert sum(by_op.values()) - by_op.get("MaxPool", 0) == measure.count_flops(model)


def test_count_params_matches_keras():
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(4, 3),
        keras.layers.BatchNormalization(),  # its moving statistics are non-trainable weights
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    assert measure.count_params(model) == model.count_params() == 4 * 9 + 4 + 4 * 4 + 26 * 26 * 4 * 10 + 10


# --- size on disk --------------------------------------------------------------------


def test_file_and_gzip_sizes(tmp_path):
    repetitive = tmp_path / "zeros.bin"
    repetitive.write_bytes(b"\0" * 100_000)
    random = tmp_path / "random.bin"
    random.write_bytes(np.random.default_rng(0).bytes(100_000))
    assert measure.file_size_bytes(repetitive) == measure.file_size_bytes(random) == 100_000
    assert measure.gzip_size_bytes(repetitive) < 1_000
    assert measure.gzip_size_bytes(random) > 100_000  # incompressible data only gains a header
    import gzip

    assert measure.gzip_size_bytes(random) == len(gzip.compress(random.read_bytes(), compresslevel=9, mtime=0))


def test_model_size_report(tmp_path):
    model = keras.Sequential([keras.Input((100,)), keras.layers.Dense(100)], name="tiny")
    report = measure.model_size_report(model, tmp_path / "models")
    assert report["path"] == str(tmp_path / "models" / "tiny.keras") and os.path.isfile(report["path"])
    # float32 weights alone are 4 bytes per parameter; the zip adds config and metadata.
    assert report["size_bytes"] > 4 * model.count_params()
    assert 0 < report["gzip_bytes"] <= report["size_bytes"] * 1.01


# --- latency -------------------------------------------------------------------------


def test_latency_of_a_sleep():
    result = measure.measure_latency(time.sleep, 0.01, warmup=1, repeats=7, batch_size=4)
    assert result.repeats == 7 and result.batch_size == 4
    assert 0.009 <= result.median_s < 0.5  # a loaded CI machine may oversleep; never less
    assert result.p10_s <= result.median_s <= result.p90_s
    assert result.throughput_per_s == pytest.approx(4 / result.median_s)


def test_latency_defaults_from_profile_and_waits_for_results(monkeypatch):
    monkeypatch.setenv("EFFICIENT_DL_PROFILE", "fast")
    calls, synced = [], []

    class Lazy:  # stands in for a tensor whose value is computed on read
        def numpy(self):
            synced.append(1)

    def fn():
        calls.append(1)
        return [Lazy(), {"b": Lazy()}]

    result = measure.measure_latency(fn)
    fast = measure.profile.PROFILES["fast"]
    assert len(calls) == fast.latency_warmup + fast.latency_repeats == result.repeats + fast.latency_warmup
    assert len(synced) == 2 * len(calls)


# --- energy --------------------------------------------------------------------------


def _fake_rapl(root, packages):
    """A powercap folder: {name: (energy_uj, max_energy_range_uj)}."""
    for name, (energy, max_range) in packages.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "energy_uj").write_text(f"{energy}\n")
        (folder / "max_energy_range_uj").write_text(f"{max_range}\n")


def test_rapl_counter_with_wrap_around(tmp_path):
    _fake_rapl(tmp_path, {
        "intel-rapl:0": (1_000_000, 10_000_000),
        "intel-rapl:1": (9_500_000, 10_000_000),
        "intel-rapl:0:0": (5, 10_000_000),  # a subdomain: inside package 0, must not count twice
    })
    with measure.EnergyMeter(nvml=None, rapl_root=tmp_path) as meter:
        _fake_rapl(tmp_path, {
            "intel-rapl:0": (3_000_000, 10_000_000),  # +2 J
            "intel-rapl:1": (500_000, 10_000_000),  # wrapped: +1 J
            "intel-rapl:0:0": (1_000_005, 10_000_000),
        })
    reading = meter.result
    assert reading.joules == pytest.approx(3.0)
    assert "RAPL" in reading.method and not reading.is_estimate
    assert reading.seconds >= 0 and "2 CPU package" in reading.note


def test_nvml_counter_is_preferred(tmp_path):
    _fake_rapl(tmp_path, {"intel-rapl:0": (0, 10)})

    class FakeNvml:
        energy_mj = [1_000, 5_000]

        def nvmlInit(self):
            pass

        def nvmlShutdown(self):
            pass

        def nvmlDeviceGetCount(self):
            return 2

        def nvmlDeviceGetHandleByIndex(self, i):
            return i

        def nvmlDeviceGetTotalEnergyConsumption(self, handle):
            return self.energy_mj[handle]

    nvml = FakeNvml()
    with measure.EnergyMeter(flops=1e9, nvml=nvml, rapl_root=tmp_path) as meter:
        nvml.energy_mj = [1_500, 7_000]
    assert meter.result.joules == pytest.approx(2.5)
    assert "NVML" in meter.result.method and not meter.result.is_estimate


def test_estimate_from_flops_is_labelled(tmp_path):
    with measure.EnergyMeter(flops=2e12, nvml=None, rapl_root=tmp_path) as meter:
        pass
    reading = meter.result
    assert reading.is_estimate and reading.method == "estimate from FLOPs"
    assert reading.joules == pytest.approx(2e12 * measure.ESTIMATE_JOULES_PER_FLOP)
    assert "ESTIMATE" in reading.note and f"{measure.ESTIMATE_JOULES_PER_FLOP:g}" in reading.note


def test_no_counter_and_no_flops_gives_nan(tmp_path):
    with measure.EnergyMeter(nvml=None, rapl_root=tmp_path / "absent") as meter:
        pass
    assert math.isnan(meter.result.joules) and "no flops=" in meter.result.note


def test_result_before_the_block_ends():
    with pytest.raises(RuntimeError, match="after the with block"):
        measure.EnergyMeter().result
