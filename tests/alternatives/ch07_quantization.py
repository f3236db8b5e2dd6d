"""Correct answers for chapter 07, written differently from the solution."""
from alternatives import Alternative

ALTERNATIVES = [
    Alternative("ex1_scale_and_zero_point", "NumPy float32 throughout, np.minimum/np.maximum, an np.int32 zero point", '''
def symmetric_scale(x):
    return np.abs(np.asarray(x, dtype=np.float32)).max() / np.float32(127)


def affine_parameters(x):
    x = np.asarray(x, dtype=np.float32)
    low = np.minimum(x.min(), np.float32(0))
    high = np.maximum(x.max(), np.float32(0))
    scale = (high - low) / np.float32(255)
    zero_point = np.int32(np.round(-128 - low / scale))
    return scale, zero_point
'''),
    Alternative("ex1_scale_and_zero_point", "Python floats, the largest of |max| and |min|, zero point as -128 - round(low / scale)", '''
def symmetric_scale(x):
    flat = np.ravel(x)
    return max(abs(float(flat.max())), abs(float(flat.min()))) / 127


def affine_parameters(x):
    flat = np.ravel(x).astype(float)
    low = min(flat.min(), 0.0)
    high = max(flat.max(), 0.0)
    scale = (high - low) / 255
    return (scale, -128 - int(round(low / scale)))
'''),
    Alternative("ex2_quantize_dequantize", "np.rint, np.minimum/np.maximum with np.iinfo, ufuncs with dtype=", '''
def quantize(x, scale, zero_point):
    q = np.rint(np.divide(x, scale)) + np.asarray(zero_point)
    info = np.iinfo(np.int8)
    return np.minimum(np.maximum(q, info.min), info.max).astype(np.int8)


def dequantize(q, scale, zero_point):
    return np.multiply(np.subtract(q, zero_point, dtype=np.float32), scale, dtype=np.float32)
'''),
    Alternative("ex2_quantize_dequantize", "TensorFlow and Keras operations, converted back to NumPy", '''
def quantize(x, scale, zero_point):
    q = tf.round(tf.constant(x, tf.float64) / tf.cast(scale, tf.float64)) + tf.cast(zero_point, tf.float64)
    return tf.cast(tf.clip_by_value(q, -128.0, 127.0), tf.int8).numpy()


def dequantize(q, scale, zero_point):
    shifted = keras.ops.subtract(keras.ops.cast(q, "float32"), keras.ops.cast(zero_point, "float32"))
    return keras.ops.convert_to_numpy(keras.ops.multiply(shifted, keras.ops.cast(scale, "float32"))).astype(np.float32)
'''),
    Alternative("ex3_per_channel_scales", "reshape to (positions, channels) and take the column maxima", '''
def per_channel_scales(kernel):
    columns = np.reshape(kernel, (-1, np.shape(kernel)[-1]))
    return np.abs(columns).max(axis=0) / 127.0
'''),
    Alternative("ex3_per_channel_scales", "a loop over the channels, float32 result", '''
def per_channel_scales(kernel):
    kernel = np.asarray(kernel)
    return np.array([np.abs(kernel[..., channel]).max() / 127 for channel in range(kernel.shape[-1])],
                    dtype=np.float32)
'''),
    Alternative("ex4_representative_dataset", "tf.data: batches of one, taken from the training images", '''
REPRESENTATIVE_SAMPLES = 500


def representative_dataset():
    images = tf.data.Dataset.from_tensor_slices(splits.x_train).batch(1).take(REPRESENTATIVE_SAMPLES)
    for batch in images:
        yield [batch]
'''),
    Alternative("ex4_representative_dataset", "a random sample of training images, without replacement", '''
REPRESENTATIVE_SAMPLES = 128


def representative_dataset():
    rng = np.random.default_rng(42)
    for index in rng.choice(len(splits.x_train), size=REPRESENTATIVE_SAMPLES, replace=False):
        yield [np.expand_dims(splits.x_train[index], axis=0)]
'''),
    Alternative("ex5_full_integer_converter", "through a SavedModel, sets for the options, RepresentativeDataset", '''
def full_integer_converter(model, representative_dataset):
    folder = tempfile.mkdtemp()
    model.export(folder, format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    converter.optimizations = {tf.lite.Optimize.DEFAULT}
    converter.representative_dataset = tf.lite.RepresentativeDataset(representative_dataset)
    converter.target_spec.supported_ops = {tf.lite.OpsSet.TFLITE_BUILTINS_INT8}
    converter.inference_input_type, converter.inference_output_type = tf.int8, tf.int8
    return converter
'''),
    Alternative("ex5_full_integer_converter", "settings applied in a loop of attribute names", '''
def full_integer_converter(model, representative_dataset):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    settings = {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative_dataset,
                "inference_input_type": tf.int8, "inference_output_type": tf.int8}
    for name, value in settings.items():
        setattr(converter, name, value)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter
'''),
    Alternative("ex6_qat_recipe", "quantize_annotate_model + quantize_apply, a tf.data pipeline, one fit per epoch", '''
def qat_int8_tflite(model, x_train, y_train, epochs):
    twin = baselines.cnn_in_tf_keras(model)
    annotated = tfmot.quantization.keras.quantize_annotate_model(twin)
    qat = tfmot.quantization.keras.quantize_apply(annotated)
    qat.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=0.0001),
                loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=[tf_keras.metrics.SparseCategoricalAccuracy()])
    batches = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=1).batch(32)
    for _ in range(epochs):
        qat.fit(batches, epochs=1, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(qat)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(litert.convert(converter))
'''),
    Alternative("ex6_qat_recipe", "the twin built by hand from the architecture, through a SavedModel", '''
def qat_int8_tflite(model, x_train, y_train, epochs):
    twin = baselines.baseline_cnn(name="twin", keras_module=tf_keras)
    twin.set_weights(model.get_weights())
    qat = tfmot.quantization.keras.quantize_model(twin)
    qat.compile(tf_keras.optimizers.Adam(1e-4), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
    qat.fit(np.asarray(x_train), np.asarray(y_train), batch_size=32, epochs=epochs, verbose=0)
    folder = tempfile.mkdtemp()
    qat.save(folder, save_format="tf")
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type, converter.inference_output_type = tf.int8, tf.int8
    return litert.convert(converter)
'''),
    Alternative("ex7_comparison_table", "columns built as lists, an index named variant", '''
def comparison_table(measurements, reference="float32"):
    names = list(measurements)
    size = np.array([measurements[n]["size_bytes"] for n in names], dtype=float)
    median = np.array([measurements[n]["latency"].median_s for n in names])
    reference_size = measurements[reference]["size_bytes"]
    reference_median = measurements[reference]["latency"].median_s
    table = pd.DataFrame({
        "size_kb": size / 1e3,
        "relative_size": size / reference_size,
        "accuracy_pct": [measurements[n]["accuracy"] * 100 for n in names],
        "latency_ms": median * 1e3,
        "relative_latency": median / reference_median,
    }, index=pd.Index(names, name="variant"))
    return table
'''),
    Alternative("ex7_comparison_table", "records with a variant column, then set_index, in another column order", '''
def comparison_table(measurements, reference="float32"):
    reference_row = measurements[reference]
    records = []
    for variant, row in measurements.items():
        records.append({
            "variant": variant,
            "latency_ms": row["latency"].median_s * 1000.0,
            "relative_latency": row["latency"].median_s / reference_row["latency"].median_s,
            "accuracy_pct": row["accuracy"] * 100.0,
            "size_kb": row["size_bytes"] / 1000.0,
            "relative_size": row["size_bytes"] / reference_row["size_bytes"],
        })
    return pd.DataFrame.from_records(records).set_index("variant")
'''),
]
