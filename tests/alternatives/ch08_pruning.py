"""Correct answers for chapter 08, written differently from the solution."""
from alternatives import Alternative

ALTERNATIVES = [
    Alternative("ex1_magnitude_masks", "lexsort on (magnitude, position), boolean masks, global ranking done directly", '''
def magnitude_mask(weights, sparsity):
    weights = np.asarray(weights)
    magnitudes = np.abs(weights).reshape(-1)
    count = int(np.round(sparsity * magnitudes.size))
    order = np.lexsort((np.arange(magnitudes.size), magnitudes))  # by magnitude, then by position
    keep = np.ones(magnitudes.size, dtype=bool)
    keep[order[:count]] = False
    return keep.reshape(weights.shape)


def global_magnitude_masks(tensors, sparsity):
    arrays = [np.asarray(t) for t in tensors]
    magnitudes = np.abs(np.concatenate([a.reshape(-1) for a in arrays]))
    count = int(np.round(sparsity * magnitudes.size))
    keep = np.ones(magnitudes.size, dtype=bool)
    keep[np.lexsort((np.arange(magnitudes.size), magnitudes))[:count]] = False
    pieces = np.split(keep, np.cumsum([a.size for a in arrays])[:-1])
    return [piece.reshape(a.shape) for piece, a in zip(pieces, arrays)]
'''),
    Alternative("ex1_magnitude_masks", "a threshold, then the ties at the threshold pruned in order; Python lists", '''
def magnitude_mask(weights, sparsity):
    magnitudes = np.abs(np.array(weights, dtype=float)).flatten()
    k = round(float(sparsity) * len(magnitudes))
    mask = np.ones(len(magnitudes))
    if k > 0:
        threshold = np.sort(magnitudes)[k - 1]
        below = magnitudes < threshold
        mask[below] = 0
        ties = [i for i, m in enumerate(magnitudes) if m == threshold]
        for i in ties[:k - int(below.sum())]:
            mask[i] = 0
    return mask.reshape(np.shape(weights))


def global_magnitude_masks(tensors, sparsity):
    sizes = [int(np.size(t)) for t in tensors]
    everything = magnitude_mask(np.concatenate([np.ravel(t) for t in tensors]), sparsity)
    result = []
    offset = 0
    for tensor, size in zip(tensors, sizes):
        result.append(everything[offset:offset + size].reshape(np.shape(tensor)))
        offset += size
    return result
'''),
    Alternative("ex2_native_pruning", "the optimizer's iteration counter as the step, a quantile threshold, keras.ops", '''
def polynomial_sparsity(step, target_sparsity, begin_step, end_step, power=3):
    fraction = min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)
    return target_sparsity * (1 - (1 - fraction) ** power)


class MaskConstraint(keras.constraints.Constraint):
    def __init__(self, mask):
        super().__init__()
        self.mask = mask

    def __call__(self, w):
        return keras.ops.multiply(w, self.mask)


class MagnitudePruning(keras.callbacks.Callback):
    def __init__(self, target_sparsity, begin_step, end_step, frequency):
        super().__init__()
        self.schedule = (target_sparsity, begin_step, end_step)
        self.frequency = frequency
        self.pairs = []

    def on_train_begin(self, logs=None):
        for layer in self.model.layers:
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
                mask = keras.Variable(keras.ops.ones(layer.kernel.shape), trainable=False)
                layer.kernel.constraint = MaskConstraint(mask)
                self.pairs.append((layer, mask))

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        target, begin, end = self.schedule
        if not (begin <= step <= end and ((step - begin) % self.frequency == 0 or step == end)):
            return
        sparsity = polynomial_sparsity(step, target, begin, end)
        for layer, mask in self.pairs:
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            if sparsity <= 0:
                new_mask = np.ones_like(kernel)
            else:
                new_mask = (np.abs(kernel) > np.quantile(np.abs(kernel), sparsity)).astype("float32")
            mask.assign(new_mask)
            layer.kernel.assign(kernel * new_mask)


keras.utils.set_random_seed(0)
native_pruned = keras.models.clone_model(baseline)
native_pruned.set_weights(baseline.get_weights())
native_pruned.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
steps = FINE_TUNE_EPOCHS * int(np.ceil(len(x_finetune) / BATCH_SIZE))
native_pruned.fit(x_finetune, y_finetune, epochs=FINE_TUNE_EPOCHS, batch_size=BATCH_SIZE, verbose=0,
                  callbacks=[MagnitudePruning(TARGET_SPARSITY, 0, int(0.65 * steps), 8)])
'''),
    Alternative("ex2_native_pruning", "numpy-float schedule, a constraint with get_config, a step counted at batch end", '''
def polynomial_sparsity(step, target_sparsity, begin_step, end_step, power=3):
    if step < begin_step:
        return np.float32(0.0)
    t = np.clip((step - begin_step) / float(end_step - begin_step), 0.0, 1.0)
    return np.float32(target_sparsity * (1.0 - (1.0 - t) ** power))


class MaskConstraint(keras.constraints.Constraint):
    def __init__(self, mask):
        self.mask = mask

    def __call__(self, w):
        return w * self.mask

    def get_config(self):
        return {}


class MagnitudePruning(keras.callbacks.Callback):
    def __init__(self, target_sparsity, begin_step, end_step, frequency):
        super().__init__()
        self.target_sparsity = target_sparsity
        self.begin_step = begin_step
        self.end_step = end_step
        self.frequency = frequency
        self.steps_done = 0
        self.masks = []

    def on_train_begin(self, logs=None):
        self.masks = []
        for layer in self.model.layers:
            if type(layer).__name__ in ("Conv2D", "Dense"):
                mask = keras.Variable(np.ones(tuple(layer.kernel.shape), np.float32), trainable=False)
                layer.kernel.constraint = MaskConstraint(mask)
                self.masks.append((layer.kernel, mask))

    def on_train_batch_begin(self, batch, logs=None):
        step = self.steps_done
        scheduled = (step - self.begin_step) % self.frequency == 0 or step == self.end_step
        if self.begin_step <= step <= self.end_step and scheduled:
            sparsity = float(polynomial_sparsity(step, self.target_sparsity, self.begin_step, self.end_step))
            for kernel, mask in self.masks:
                values = kernel.numpy()
                flat = np.abs(values).ravel()
                pruned = np.argsort(flat, kind="mergesort")[:int(round(sparsity * flat.size))]
                new = np.ones_like(flat)
                new[pruned] = 0
                mask.assign(new.reshape(values.shape))
                kernel.assign(values * new.reshape(values.shape))

    def on_train_batch_end(self, batch, logs=None):
        self.steps_done += 1


keras.utils.set_random_seed(0)
native_pruned = baselines.baseline_cnn(name="my_pruned_cnn")
native_pruned.set_weights([w.copy() for w in baseline.get_weights()])
native_pruned.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
per_epoch = -(-len(y_finetune) // BATCH_SIZE)
native_pruned.fit(x_finetune, y_finetune, batch_size=BATCH_SIZE, epochs=FINE_TUNE_EPOCHS, verbose=0,
                  callbacks=[MagnitudePruning(TARGET_SPARSITY, begin_step=0,
                                              end_step=(2 * FINE_TUNE_EPOCHS * per_epoch) // 3, frequency=5)])
'''),
    Alternative("ex3_tfmot_pruning", "clone_model with a clone_function wrapping only Conv2D and Dense", '''
def prune_with_tfmot(model, x_train, y_train, target_sparsity, epochs, batch_size=BATCH_SIZE):
    twin = baselines.cnn_in_tf_keras(model)
    steps = epochs * int(np.ceil(len(y_train) / batch_size))
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, float(target_sparsity), 0, int(0.7 * steps),
                                                    frequency=max(1, steps // 40))

    def wrap(layer):
        if isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.Dense)):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    wrapped = tf_keras.models.clone_model(twin, clone_function=wrap)
    wrapped.compile(tf_keras.optimizers.Adam(learning_rate=1e-3),
                    tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    wrapped.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0,
                callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    return stripped


tf_keras.utils.set_random_seed(0)
pruned_tf = prune_with_tfmot(baseline, x_finetune, y_finetune, TARGET_SPARSITY, FINE_TUNE_EPOCHS)
'''),
    Alternative("ex3_tfmot_pruning", "the twin built by hand with copy_weights, a tf.data pipeline, a schedule dict", '''
def prune_with_tfmot(model, x_train, y_train, target_sparsity, epochs, batch_size=BATCH_SIZE):
    twin = baselines.baseline_cnn(name="twin", keras_module=tf_keras)
    baselines.copy_weights(model, twin, x_train[:8])
    per_epoch = -(-len(y_train) // batch_size)
    params = {"pruning_schedule": tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=target_sparsity, begin_step=0,
        end_step=int(epochs * per_epoch * 0.6), frequency=5)}
    pruned = tfmot.sparsity.keras.prune_low_magnitude(twin, **params)
    pruned.compile(optimizer=tf_keras.optimizers.Adam(0.001),
                   loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(y_train), seed=0).batch(batch_size)
    pruned.fit(dataset, epochs=epochs, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(pruned)


tf_keras.utils.set_random_seed(0)
pruned_tf = prune_with_tfmot(baseline, x_finetune, y_finetune, TARGET_SPARSITY, FINE_TUNE_EPOCHS)
'''),
    Alternative("ex4_pruned_int8", "a tf.data representative dataset, the scheme passed by keyword, a tf.data fit", '''
def to_int8_tflite(model, calibration_images):
    images = tf.data.Dataset.from_tensor_slices(np.asarray(calibration_images, np.float32)).batch(1)

    def representative_dataset():
        for batch in images:
            yield [batch]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(litert.convert(converter))


def sparsity_preserving_qat(pruned_model, x_train, y_train, epochs, batch_size=BATCH_SIZE):
    scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    model = tfmot.quantization.keras.quantize_apply(tfmot.quantization.keras.quantize_annotate_model(pruned_model),
                                                    scheme=scheme)
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=1e-4),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(y_train), seed=0).batch(batch_size)
    model.fit(dataset, epochs=epochs, verbose=0)
    return model
'''),
    Alternative("ex4_pruned_int8", "a lambda generator, no explicit ops list, the QAT model built in two named steps", '''
def to_int8_tflite(model, calibration_images):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([img[None, ...].astype(np.float32)] for img in calibration_images)
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return litert.convert(converter)


def sparsity_preserving_qat(pruned_model, x_train, y_train, epochs, batch_size=BATCH_SIZE):
    quantize = tfmot.quantization.keras
    annotated = quantize.quantize_annotate_model(pruned_model)
    preserving = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    qat_model = quantize.quantize_apply(annotated, preserving)
    qat_model.compile(tf_keras.optimizers.Adam(1e-4), tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat_model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    return qat_model
'''),
]
