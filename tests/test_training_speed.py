"""efficient_dl.training_speed: the protocol chapter 06 times every configuration with.

No test asserts how fast anything is; the only comparison is between a pipeline that sleeps
5 ms per batch and the same pipeline cached, a difference that is huge and deterministic.
"""
import numpy as np
import pytest

from efficient_dl import training_speed

ZEN4_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse sse2 avx avx2 f16c fma avx512f avx512dq avx512_bf16 avx512_vnni avx512_bitalg
"""
SAPPHIRE_RAPIDS_CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 avx avx2 f16c avx512f avx512_bf16 avx512_fp16 avx512_vnni amx_bf16 amx_tile amx_int8
"""
OLD_X86_CPUINFO = """model name\t: Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz
flags\t\t: fpu sse sse2 avx avx2 f16c fma
"""
GRAVITON3_CPUINFO = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm bf16 i8mm svebf16
"""


def tiny_model(steps_per_execution=1):
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    return model


def arrays(n=256, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8), dtype=np.float32), rng.integers(0, 2, n)


def test_throughput_is_positive_and_the_first_step_is_reported_apart_from_the_median():
    result = training_speed.measure_training_throughput(tiny_model(), arrays(), batch_size=32, steps=5,
                                                        warmup_steps=2, repeats=2, configuration="float32",
                                                        device="here")
    assert result.examples_per_s > 0
    assert result.examples_per_s == pytest.approx(32 / result.median_step_s)
    assert result.p10_step_s <= result.median_step_s <= result.p90_step_s
    assert result.first_step_s >= result.median_step_s, "the first step traces the train function"
    assert (result.configuration, result.device, result.batch_size, result.steps, result.repeats) == \
        ("float32", "here", 32, 5, 2)


def test_more_steps_than_the_arrays_hold_are_served_by_wrapping_round():
    x, y = arrays(n=64)
    result = training_speed.measure_training_throughput(tiny_model(), (x, y), batch_size=32, steps=6,
                                                        warmup_steps=1, repeats=1)
    assert result.steps == 6 and result.examples_per_s > 0
    assert result.device  # a description of where it ran, by default


def test_a_model_that_groups_steps_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="steps_per_execution=1"):
        training_speed.measure_training_throughput(tiny_model(steps_per_execution=2), arrays(), batch_size=32,
                                                   steps=2, warmup_steps=0, repeats=1)


def test_an_uncompiled_model_is_refused_with_the_fix():
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="compile"):
        training_speed.measure_training_throughput(model, arrays(), batch_size=32, steps=2)


def test_a_slow_map_in_the_pipeline_lowers_the_throughput_and_caching_it_restores_it():
    import time

    import tensorflow as tf

    x, y = arrays(n=128)

    def slow(images, labels):
        def sleep(images):
            time.sleep(0.005)
            return images

        images = tf.py_function(sleep, [images], tf.float32)
        images.set_shape((None, 8))
        return images, labels

    pipeline = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).map(slow)  # 4 batches, 5 ms each
    measure = dict(batch_size=32, steps=12, warmup_steps=2, repeats=1)
    uncached = training_speed.measure_training_throughput(tiny_model(), pipeline, configuration="slow map", **measure)
    cached = training_speed.measure_training_throughput(tiny_model(), pipeline.cache(), configuration="cached",
                                                        **measure)
    assert uncached.median_step_s >= 0.005, "every step waits for the 5 ms map"
    assert cached.examples_per_s > uncached.examples_per_s, "after the first pass the cache serves the batches"


def result(configuration, examples_per_s, batch_size=32, device="cpu"):
    return training_speed.Throughput(configuration, device, batch_size, examples_per_s, batch_size / examples_per_s,
                                     0.0, 0.0, 1.5, 10, 1)


def test_the_speedup_table_puts_the_baseline_at_one_and_compares_at_the_same_batch_size():
    results = [result("float32", 1000.0), result("mixed", 2500.0), result("float32", 4000.0, batch_size=256),
               result("mixed", 6000.0, batch_size=256)]
    table = training_speed.speedup_table(results)
    lines = table.splitlines()
    assert lines[0].startswith("| configuration | device | batch | examples/s | speed-up | first step (s) |")
    assert "| float32 | cpu | 32 | 1,000 | 1.00x | 1.50 |" in lines
    assert "| mixed | cpu | 32 | 2,500 | 2.50x | 1.50 |" in lines
    assert "| mixed | cpu | 256 | 6,000 | 1.50x | 1.50 |" in lines
    speedups = [row["speedup"] for row in training_speed.speedup_rows(results, baseline="mixed")]
    assert speedups == pytest.approx([0.4, 1.0, 4000 / 6000, 1.0])


def test_a_baseline_that_was_not_measured_is_named_in_the_error():
    with pytest.raises(ValueError, match="'fp64'.*float32"):
        training_speed.speedup_table([result("float32", 1.0)], baseline="fp64")


@pytest.mark.parametrize("text, bfloat16, float16, says", [
    (ZEN4_CPUINFO, "vector instructions", "none", "has AVX-512 BF16 instructions but no AMX"),
    (SAPPHIRE_RAPIDS_CPUINFO, "matrix units", "vector instructions", "has AMX matrix units for bfloat16"),
    (OLD_X86_CPUINFO, "none", "none", "has no bfloat16 instructions"),
    (GRAVITON3_CPUINFO, "vector instructions", "vector instructions", "has BF16 instructions but no SME"),
])
def test_the_low_precision_units_are_read_from_cpuinfo_flags(text, bfloat16, float16, says):
    units = training_speed.cpu_low_precision_units(cpuinfo_text=text)
    assert (units["bfloat16"], units["float16"]) == (bfloat16, float16)
    assert units["verdict"].startswith("This CPU ") and says in units["verdict"]
    if float16 == "none":
        assert "float16 has no fast path and will be much slower" in units["verdict"]


def test_the_zen4_verdict_is_the_sentence_the_notebook_prints():
    units = training_speed.cpu_low_precision_units(cpuinfo_text=ZEN4_CPUINFO)
    assert units["flags"]["avx512_bf16"] and not units["flags"]["amx_bf16"]
    assert units["verdict"] == ("This CPU has AVX-512 BF16 instructions but no AMX: bfloat16 matmuls can be faster "
                                "than float32; float16 has no fast path and will be much slower.")


def test_a_cpu_it_cannot_read_is_said_to_be_unknown():
    units = training_speed.cpu_low_precision_units(cpuinfo_text="")
    assert units["bfloat16"] == units["float16"] == "unknown"
    assert units["verdict"].startswith("Could not tell")



def test_a_profile_shows_an_input_bound_pipeline_and_a_compute_bound_one(tmp_path):
    """Keras' TensorBoard callback writes a trace; read_profile splits its time between tf.data and
    the training step: a map that sleeps 20 ms per batch is input-bound, the same batches cached,
    feeding a step of about 2 ms, are compute-bound."""
    import time

    import keras
    import tensorflow as tf

    x, y = arrays(n=128)

    def slow(images, labels):
        images = tf.py_function(lambda batch: (time.sleep(0.02), batch)[1], [images], tf.float32)
        images.set_shape((None, 8))
        return images, labels

    def busy_model():  # about 2 ms of matrix products per step: far more than serving a cached batch
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1024, activation="relu"),
                                  keras.layers.Dense(1024, activation="relu"), keras.layers.Dense(2)])
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    found = {}
    for name, pipeline in (("slow", batches.map(slow)), ("cached", batches.cache())):
        busy_model().fit(pipeline.repeat(), epochs=1, steps_per_epoch=8, verbose=0, callbacks=[
            keras.callbacks.TensorBoard(log_dir=str(tmp_path / name), profile_batch=(3, 6))])
        found[name] = training_speed.read_profile(tmp_path / name)
    assert found["slow"].bound == "input" and found["cached"].bound == "compute", found
    assert found["slow"].input_share > found["cached"].input_share
    assert all(breakdown.model_us > 0 and breakdown.top_operations for breakdown in found.values())


def test_reading_a_profile_that_was_not_written_says_how_to_write_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="profile_batch"):
        training_speed.read_profile(tmp_path)
