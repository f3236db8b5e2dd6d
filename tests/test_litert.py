"""Converted models run with LiteRT: quiet conversion, scoring, types, quantization read back."""
import numpy as np
import pytest

from efficient_dl import baselines, litert, quiet


@pytest.fixture(scope="module")
def tf():
    with quiet.filtered_stderr():
        import tensorflow as tf
    return tf


@pytest.fixture(scope="module")
def cnn(tf):
    import keras

    keras.utils.set_random_seed(3)
    return baselines.baseline_cnn(name="litert_test_cnn")


@pytest.fixture(scope="module")
def digits():
    return np.random.default_rng(0).random((40, 28, 28, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def float32_bytes(tf, cnn):
    return litert.convert(tf.lite.TFLiteConverter.from_keras_model(cnn))


@pytest.fixture(scope="module")
def int8_bytes(tf, cnn, digits):
    converter = tf.lite.TFLiteConverter.from_keras_model(cnn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([digits[i:i + 1]] for i in range(len(digits)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return litert.convert(converter)


def test_conversion_and_interpreters_print_nothing(tf, cnn, digits, capfd):
    converter = tf.lite.TFLiteConverter.from_keras_model(cnn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([digits[i:i + 1]] for i in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    model = litert.convert(converter)
    litert.interpreter(model)
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out[:300], err[:300])


def test_the_float32_model_computes_what_keras_computes(cnn, digits, float32_bytes):
    expected = np.asarray(cnn(digits, training=False))
    np.testing.assert_allclose(litert.predict(float32_bytes, digits, batch_size=16), expected, atol=1e-4)
    labels = np.argmax(expected, axis=1)
    assert litert.accuracy(float32_bytes, digits, labels) == 1.0
    assert litert.accuracy(float32_bytes, digits, (labels + 1) % 10) == 0.0


def test_an_integer_only_model_is_int8_throughout_and_close_to_float(cnn, digits, int8_bytes, float32_bytes):
    types = litert.tensor_types(int8_bytes)
    assert types.input == "int8" and types.output == "int8"
    assert len(types.weights) == 4 and types.weight_dtypes == {"int8"}, types.weights
    assert set(types.biases.values()) == {"int32"}
    assert litert.tensor_types(float32_bytes).weight_dtypes == {"float32"}
    expected = np.asarray(cnn(digits, training=False))
    got = litert.predict(int8_bytes, digits)  # inputs quantized, outputs dequantized for us
    assert np.max(np.abs(got - expected)) < 0.05 * np.max(np.abs(expected)) + 0.01
    assert litert.size_bytes(float32_bytes) / litert.size_bytes(int8_bytes) > 3.5
    assert litert.gzip_size_bytes(int8_bytes) < litert.size_bytes(int8_bytes)


def test_stored_weight_quantization_matches_an_independent_computation(cnn, int8_bytes):
    """TFLite stores a convolution's weights symmetric per output channel: scale = max|w| / 127."""
    name = next(n for n in litert.tensor_types(int8_bytes).weights if "conv1" in n)
    scales, zero_points, axis = litert.quantization_of(int8_bytes, name)
    kernel = np.asarray(cnn.get_layer("conv1").kernel)  # (3, 3, 1, 32), Keras layout
    expected = np.max(np.abs(kernel), axis=(0, 1, 2)) / 127
    np.testing.assert_allclose(scales, expected, rtol=1e-6)
    assert np.all(zero_points == 0) and axis == 0
    stored = litert.weight_values(int8_bytes, name)  # (32, 3, 3, 1): TFLite puts channels first
    np.testing.assert_array_equal(stored, np.round(np.transpose(kernel, (3, 0, 1, 2)) / expected[:, None, None, None]))


def test_latency_times_one_invoke(int8_bytes, digits):
    result = litert.latency(int8_bytes, digits[:1], warmup=1, repeats=5)
    assert result.repeats == 5 and result.batch_size == 1 and 0 < result.median_s < 1.0


def test_an_unknown_tensor_name_is_a_clear_error(int8_bytes):
    with pytest.raises(KeyError, match="no tensor named 'nope'"):
        litert.quantization_of(int8_bytes, "nope")


def test_a_float_models_weights_read_back_as_keras_holds_them(cnn, float32_bytes):
    name = next(n for n in litert.tensor_types(float32_bytes).weights if "dense1" in n)
    stored = litert.weight_values(float32_bytes, name)  # (100, 3136): TFLite stores Dense kernels transposed
    np.testing.assert_array_equal(stored, np.asarray(cnn.get_layer("dense1").kernel).T)


def test_float16_weights_are_found_behind_their_dequantize_ops(tf, cnn):
    converter = tf.lite.TFLiteConverter.from_keras_model(cnn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    model = litert.convert(converter)
    types = litert.tensor_types(model)
    assert types.input == "float32" and len(types.weights) == 4 and types.weight_dtypes == {"float16"}
    name = next(n for n in types.weights if "conv2" in n)
    kernel = np.asarray(cnn.get_layer("conv2").kernel)
    np.testing.assert_array_equal(litert.weight_values(model, name), np.transpose(kernel, (3, 0, 1, 2)).astype(np.float16))


def test_a_model_that_takes_word_ids_gets_them_unchanged(tf):
    """Integer inputs with no quantization (scale 0), such as word ids, are not 'quantized'."""
    import keras

    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((6,), batch_size=1, dtype="int32"), keras.layers.Embedding(50, 3),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    ids = np.array([[3, 49, 0, 7, 7, 1]], dtype=np.int32)
    converted = litert.convert(tf.lite.TFLiteConverter.from_keras_model(model))
    np.testing.assert_allclose(litert.predict(converted, ids), np.asarray(model(ids)), atol=1e-5)
