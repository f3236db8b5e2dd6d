"""Correct answers for chapter 06, written differently from the solution."""
from alternatives import Alternative

ALTERNATIVES = [
    Alternative("ex1_choose_strategy", "a match statement on the machine's fields", '''
def choose_strategy(machine):
    match machine:
        case Machine(tpu=True):
            return "TPUStrategy"
        case Machine(machines=count) if count >= 2:
            return "MultiWorkerMirroredStrategy"
        case Machine(gpus_per_machine=gpus) if gpus >= 1:
            return "MirroredStrategy"
        case _:
            return "default"
'''),
    Alternative("ex1_choose_strategy", "one conditional expression, reading the fields with getattr", '''
def choose_strategy(machine):
    tpu, machines, gpus = (getattr(machine, field) for field in ("tpu", "machines", "gpus_per_machine"))
    return ("TPUStrategy" if tpu else "MultiWorkerMirroredStrategy" if machines > 1
            else "MirroredStrategy" if gpus else "default")
'''),
    Alternative("ex2_build_in_scope", "compile_baseline_cnn's return value, and the strategy's local results", '''
def build_in_scope(strategy):
    with strategy.scope():
        return baselines.compile_baseline_cnn(baselines.baseline_cnn())


def mirrored_copies(model):
    strategy = model.distribute_strategy
    return {weight.path: [copy.device for copy in strategy.experimental_local_results(weight.value)]
            for weight in model.weights}
'''),
    Alternative("ex2_build_in_scope", "the scope entered by hand, and the helper package's replica_devices", '''
def build_in_scope(strategy):
    scope = strategy.scope()
    scope.__enter__()
    try:
        model = baselines.baseline_cnn(name="mirrored_cnn")
        baselines.compile_baseline_cnn(model)
    finally:
        scope.__exit__(None, None, None)
    return model


def mirrored_copies(model):
    result = dict()
    for layer in model.layers:
        for weight in layer.weights:
            result[weight.path] = tuple(distributed.replica_devices(weight))
    return result
'''),
    Alternative("ex3_input_pipeline", "keyword arguments everywhere, the count as a tensor", '''
def training_pipeline(examples, batch_size, seed):
    cached = examples.cache()
    shuffled = cached.shuffle(buffer_size=examples.cardinality(), seed=seed)
    batched = shuffled.batch(batch_size=batch_size, drop_remainder=False)
    return batched.prefetch(buffer_size=tf.data.AUTOTUNE)
'''),
    Alternative("ex3_input_pipeline", "cache to memory by name, a parallel batch, experimental.AUTOTUNE and a larger buffer", '''
def training_pipeline(examples, batch_size, seed):
    size = examples.cardinality().numpy()
    pipeline = examples.cache(filename="")
    pipeline = pipeline.shuffle(2 * size, seed=seed, reshuffle_each_iteration=True)
    pipeline = pipeline.batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    pipeline = pipeline.prefetch(tf.data.experimental.AUTOTUNE)
    return pipeline
'''),
    Alternative("ex4_mixed_precision", "the global policy set around baselines.baseline_cnn(), a float32 activation after the logits", '''
def mixed_precision_cnn(policy_name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy_name)
    try:
        model = baselines.baseline_cnn()
        output = keras.layers.Activation("linear", dtype="float32", name="logits_float32")
        return keras.Sequential([keras.Input((28, 28, 1)), *model.layers, output], name="mixed_cnn")
    finally:
        keras.config.set_dtype_policy(previous)
'''),
    Alternative("ex4_mixed_precision", "the functional API with DTypePolicy objects", '''
def mixed_precision_cnn(policy_name):
    policy = keras.DTypePolicy(policy_name)
    full = keras.DTypePolicy("float32")
    inputs = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Conv2D(filters=32, kernel_size=(3, 3), padding="same", activation="relu", dtype=policy, name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(pool_size=2, dtype=policy, name="pool1")(x)
    x = keras.layers.Conv2D(filters=64, kernel_size=(3, 3), padding="same", activation="relu", dtype=policy, name="conv2")(x)
    x = keras.layers.MaxPooling2D(pool_size=2, dtype=policy, name="pool2")(x)
    x = keras.layers.Flatten(dtype=policy, name="flatten")(x)
    x = keras.layers.Dense(units=100, activation="relu", dtype=policy, name="dense1")(x)
    outputs = keras.layers.Dense(units=10, dtype=full, name="logits")(x)
    return keras.Model(inputs, outputs)
'''),
    Alternative("ex5_arithmetic_intensity", "multiply-accumulates first, integers until the division", '''
def dense_intensity(batch, inputs, outputs, bytes_per_value=4):
    multiply_accumulates = batch * inputs * outputs
    bias_additions = batch * outputs
    moved = (batch * inputs) + (inputs + 1) * outputs + (batch * outputs)
    return (2 * multiply_accumulates + bias_additions) / (bytes_per_value * moved)


def conv2d_intensity(batch, height, width, channels_in, channels_out, kernel_size, bytes_per_value=4):
    outputs = batch * height * width * channels_out
    multiply_accumulates = outputs * kernel_size * kernel_size * channels_in
    kernel = kernel_size * kernel_size * channels_in * channels_out
    moved = batch * height * width * channels_in + kernel + channels_out + outputs
    return (2 * multiply_accumulates + outputs) / (bytes_per_value * moved)
'''),
    Alternative("ex5_arithmetic_intensity", "shapes as tuples and math.prod, NumPy floats", '''
import math


def dense_intensity(batch, inputs, outputs, bytes_per_value=4):
    shapes = {"input": (batch, inputs), "kernel": (inputs, outputs), "bias": (outputs,), "output": (batch, outputs)}
    flops = np.float64(2) * math.prod(shapes["output"]) * inputs + math.prod(shapes["output"])
    return flops / (bytes_per_value * sum(math.prod(shape) for shape in shapes.values()))


def conv2d_intensity(batch, height, width, channels_in, channels_out, kernel_size, bytes_per_value=4):
    shapes = {"input": (batch, height, width, channels_in), "kernel": (kernel_size, kernel_size, channels_in, channels_out),
              "bias": (channels_out,), "output": (batch, height, width, channels_out)}
    per_output = 2 * kernel_size * kernel_size * channels_in + 1
    flops = np.float64(math.prod(shapes["output"])) * per_output
    return flops / (bytes_per_value * sum(math.prod(shape) for shape in shapes.values()))
'''),
    Alternative("ex6_roofline_bound", "comparing the two roofs instead of the ridge point", '''
def roofline_bound(intensity, peak_flops, bandwidth):
    memory_roof = intensity * bandwidth
    if memory_roof < peak_flops:
        return "memory", memory_roof
    return "compute", peak_flops
'''),
    Alternative("ex6_roofline_bound", "NumPy, the bound as a NumPy string", '''
def roofline_bound(intensity, peak_flops, bandwidth):
    ridge_point = np.divide(peak_flops, bandwidth)
    return np.where(intensity >= ridge_point, "compute", "memory")[()], np.minimum(peak_flops, np.multiply(intensity, bandwidth))
'''),
    Alternative("ex7_scaling_rule", "the scale factor named, and an if/else warm-up", '''
def scaled_hyperparameters(per_replica_batch, replicas, base_learning_rate, base_batch_size):
    global_batch_size = replicas * per_replica_batch
    factor = global_batch_size / base_batch_size
    return global_batch_size, factor * base_learning_rate


def warmup_learning_rate(step, peak_learning_rate, warmup_steps):
    if step >= warmup_steps:
        return peak_learning_rate
    return step * peak_learning_rate / warmup_steps
'''),
    Alternative("ex7_scaling_rule", "NumPy: np.multiply and np.clip, a list as the pair", '''
def scaled_hyperparameters(per_replica_batch, replicas, base_learning_rate, base_batch_size):
    global_batch = np.multiply(per_replica_batch, replicas)
    return [global_batch, base_learning_rate / base_batch_size * global_batch]


def warmup_learning_rate(step, peak_learning_rate, warmup_steps):
    return float(np.clip(step / warmup_steps, 0.0, 1.0) * peak_learning_rate)
'''),
]
