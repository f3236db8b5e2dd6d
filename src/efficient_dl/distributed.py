"""Data-parallel training with tf.distribute on any machine, even a 2-core laptop (chapter 06).

Chapter 06 teaches the two strategies that copy a model onto several devices and average
their gradients. Neither needs an accelerator to be *seen* working, which is the point of
this module: a student without a GPU still watches variables being mirrored and two
processes training one model over the network, only without the speed-up.

- ``mirrored_devices()``: the devices a ``MirroredStrategy`` should span. All GPUs where
  there are some; otherwise the one CPU split into logical devices. TensorFlow only allows
  that split before it initialises its devices (later it raises ``RuntimeError: Virtual
  devices cannot be modified after being initialized``, except when the split asked for is
  the one already in place), so a notebook calls it before anything else touches TensorFlow.
  The logical CPUs are named ``/device:CPU:0``, ``/device:CPU:1``, ...
- ``replica_devices(variable)``: where a variable's copies live. In Keras 3 a weight is a
  ``keras.Variable`` wrapping a TensorFlow variable: ``variable.value`` is a
  ``tf.distribute`` ``MirroredVariable`` when the model was built in a ``MirroredStrategy``
  scope, and its ``.values`` are the per-device ``tf.Variable`` copies; outside a strategy
  ``variable.value`` is one plain ``ResourceVariable`` with one ``.device``.
- ``run_multiworker_training()``: ``MultiWorkerMirroredStrategy`` for real, with each worker
  a separate Python process talking gRPC to the others on 127.0.0.1, each told its place in
  the cluster by ``TF_CONFIG``. Each worker first tries Keras 3's ``model.fit`` (with these
  pins it fails inside ``_maybe_symbolic_build``, ``ValueError: Attempt to convert a value
  (PerReplica...) with an unsupported type``: keras-team/keras issue 20585), records whether
  tf_keras's ``fit`` works there (it does), then trains with a custom loop: the recipe
  that works in Keras 3.
  The parent loads the digits and hands every worker the same file. On a 2-core machine a
  run of 20 steps takes 15-30 s, two thirds of it both workers importing TensorFlow at once.
- ``single_process_losses()``: the same loop, data and initial weights in one process, so a
  notebook can show that two workers computed exactly the loss one process computes. They
  agree to about 2e-7, not bit for bit: each step's gradient is summed in a different order
  (two half-batches summed across workers, or one batch of 64); the final weights of the
  workers are bit for bit the same.

Everything runs on the CPU and over the loopback interface only; nothing reaches the internet.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from efficient_dl.quiet import filtered_stderr

# The custom loop's model and data: a Dense classifier on the flattened MNIST sample digits.
# The baseline CNN would do, but two workers sharing two cores train it ~10x slower, and the
# lesson is the protocol, not the model. Plain SGD, because Adam divides by the square root of
# tiny second moments and so magnifies rounding differences between the two runs it compares.
HIDDEN_UNITS = 64
LEARNING_RATE = 0.1
LOCALHOST = "127.0.0.1"
RESULT_FILE = "worker-{index}.json"
WEIGHTS_FILE = "worker-{index}.npz"
EXAMPLES_FILE = "examples.npz"
STDERR_TAIL_CHARS = 2_000
# Proxy settings that gRPC would honour even for 127.0.0.1 on some versions; workers drop them.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy")
WEIGHTS_TOLERANCE = 1e-6


# --- MirroredStrategy on one machine -------------------------------------------------------

def mirrored_devices(count: int = 2, verbose: bool = True) -> list[str]:
    """The devices for ``tf.distribute.MirroredStrategy(devices)``: every GPU, else ``count``
    logical CPUs carved out of the one physical CPU (call this before any other TensorFlow use)."""
    with filtered_stderr():  # the first device query logs the CUDA probe on a CPU-only machine
        import tensorflow as tf

        # Physical devices only: listing logical ones would initialise TensorFlow's devices,
        # after which the CPU can no longer be split.
        if tf.config.list_physical_devices("GPU"):
            return [gpu.name for gpu in tf.config.list_logical_devices("GPU")]
        return _split_cpu(tf, count, verbose)


def _split_cpu(tf, count: int, verbose: bool) -> list[str]:
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    split_now = len(tf.config.get_logical_device_configuration(cpu) or ()) < count  # else: done before
    if split_now:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:  # TensorFlow has initialised its devices: only an earlier split could serve
            split_now = False
    names = [device.name for device in tf.config.list_logical_devices("CPU")]
    if len(names) < count:
        raise RuntimeError(
            f"TensorFlow has already set up its devices ({len(names)} logical CPU), so the CPU can no "
            f"longer be split into {count}. Restart the kernel and call mirrored_devices({count}) "
            "before anything else runs TensorFlow (right after the imports).")
    if verbose and split_now:
        print(f"Split the CPU into {count} logical devices so that MirroredStrategy has {count} replicas; "
              "they share the same cores, so expect no speed-up.")
    return names[:count]


def replica_devices(variable) -> list[str]:
    """The devices holding copies of ``variable`` (a Keras 3 or TensorFlow variable) in this
    process: one per local replica for a mirrored variable, a single device for a plain one."""
    tensor_variable = getattr(variable, "value", variable)  # keras.Variable -> tf.Variable
    copies = getattr(tensor_variable, "values", None)  # a tf.distribute DistributedValues
    if copies is None:
        return [tensor_variable.device]
    return [copy.device for copy in copies]


def replica_values(variable) -> list:
    """The NumPy value of each of ``variable``'s copies, in the order of ``replica_devices``."""
    tensor_variable = getattr(variable, "value", variable)
    copies = getattr(tensor_variable, "values", None) or (tensor_variable,)
    return [copy.numpy() for copy in copies]


# --- the model, the data and the loop shared by the workers and the single process ---------

def classifier(keras=None):
    """The custom loop's model: flattened 28x28 digits, one hidden ReLU layer, 10 logits."""
    if keras is None:
        import keras
    return keras.Sequential(
        [
            keras.Input((28 * 28,), name="pixels"),
            keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="mnist_dense",
    )


def training_examples(steps: int, global_batch_size: int, seed: int):
    """``steps * global_batch_size`` flattened sample digits and labels in a fixed, seeded order
    (repeating the 3,500 training digits if the run needs more)."""
    import numpy as np

    from efficient_dl import data

    splits = data.load_mnist(source="sample")  # offline: nothing in a worker may reach the network
    x = splits.x_train.reshape(len(splits.x_train), -1)
    order = np.random.default_rng(seed).permutation(len(x))
    needed = steps * global_batch_size
    order = np.resize(order, needed)  # repeats the permutation when the run is longer than the data
    return x[order], splits.y_train[order]


def _train_custom_loop(strategy, x, y, global_batch_size: int, seed: int):
    """Train ``classifier()`` on ``x, y`` in global batches of ``global_batch_size`` under
    ``strategy``; returns (losses per step, the model). Each loss is the global batch's mean,
    computed before that step's update."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)  # the same initial weights in every worker and in one process
    with strategy.scope():
        model = classifier()
        optimizer = keras.optimizers.SGD(learning_rate=LEARNING_RATE)
        optimizer.build(model.trainable_variables)  # create its variables here, not inside the step
        per_example_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch_size, drop_remainder=True)
    options = tf.data.Options()
    # Each global batch is cut into one slice per replica; DATA says so (AUTO would first look
    # for files to split, find none and log that it fell back to DATA).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = strategy.experimental_distribute_dataset(dataset.with_options(options))

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            # Divide by the GLOBAL batch size: the replicas' gradients are then summed.
            loss = tf.nn.compute_average_loss(per_example_loss(labels, logits), global_batch_size=global_batch_size)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)  # sums the gradients across replicas first
        return loss

    @tf.function
    def train_step(batch):
        per_replica_loss = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)

    losses = [float(train_step(batch)) for batch in batches]
    return losses, model


def single_process_losses(steps: int = 20, global_batch_size: int = 64, seed: int = 0) -> list[float]:
    """The losses of ``run_multiworker_training``'s loop run in this one process, without a
    strategy (TensorFlow's default one), on the CPU as the workers are."""
    with filtered_stderr():
        import tensorflow as tf

        x, y = training_examples(steps, global_batch_size, seed)
        with tf.device("/CPU:0"):
            losses, _ = _train_custom_loop(tf.distribute.get_strategy(), x, y, global_batch_size, seed)
    return losses


# --- MultiWorkerMirroredStrategy over loopback ---------------------------------------------

@dataclasses.dataclass(frozen=True)
class MultiWorkerResult:
    workers: int
    losses: list[float]  # worker 0's loss per step (the global batch's mean: the same on every worker)
    keras3_fit_works: bool
    keras3_fit_error: str  # "ValueError: ..." on one line, or "" if fit worked
    weights_identical: bool  # every worker ended with worker 0's weights (to WEIGHTS_TOLERANCE)
    seconds: float  # wall time, from starting the workers to reading their results
    keras3_fit_raised_in: str = ""  # the Keras function that raised, e.g. "_maybe_symbolic_build"
    tf_keras_fit_works: bool | None = None  # None: not checked, or tf_keras is not installed
    tf_keras_fit_error: str = ""
    max_weight_difference: float = 0.0  # the largest difference from worker 0's weights
    phase_seconds: dict = dataclasses.field(default_factory=dict)  # worker 0's time per phase

    @property
    def first_loss(self) -> float:
        return self.losses[0]

    @property
    def last_loss(self) -> float:
        return self.losses[-1]

    @property
    def first_and_last_loss(self) -> tuple[float, float]:
        return self.losses[0], self.losses[-1]

    def summary(self) -> str:
        fit = "works" if self.keras3_fit_works else f"fails ({self.keras3_fit_error})"
        same = "identical" if self.weights_identical else f"DIFFERENT (by up to {self.max_weight_difference:.2g})"
        return (f"{self.workers} workers, {len(self.losses)} steps in {self.seconds:.1f} s: loss "
                f"{self.first_loss:.4f} -> {self.last_loss:.4f}; final weights {same}; Keras 3 fit {fit}.")


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports on 127.0.0.1 that were free a moment ago (bound to port 0, then
    closed). Another program could take one before a worker binds it; that is unlikely, and
    the workers then fail to start with a clear gRPC error."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: list[int], index: int) -> str:
    cluster = {"worker": [f"{LOCALHOST}:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def worker_environment(ports: list[int], index: int, threads: int) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key.lower() not in PROXY_VARIABLES and key != "TF_CONFIG"}
    environment.update(
        TF_CONFIG=tf_config(ports, index),
        # Every worker on the CPU: on a one-GPU machine two processes would each try to take all
        # of the GPU's memory, and the run's point is the protocol, not speed. On the CPU the
        # result also matches single_process_losses() without a GPU's rounding in between.
        CUDA_VISIBLE_DEVICES="",
        TF_CPP_MIN_LOG_LEVEL="2",
        ABSL_MIN_LOG_LEVEL="2",
        TF_ENABLE_ONEDNN_OPTS=os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1"),
        EFFICIENT_DL_DATA_SOURCE="sample",
        EFFICIENT_DL_WORKER_THREADS=str(threads),
        # The workers run ``-m efficient_dl.distributed``: find this very copy of the package.
        PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                 os.environ.get("PYTHONPATH")])),
        PYTHONHASHSEED="0",
        NO_PROXY="*", no_proxy="*",
    )
    return environment


def run_multiworker_training(workers: int = 2, steps: int = 20, global_batch_size: int = 64, seed: int = 0,
                             timeout_s: float = 240, folder: str | os.PathLike | None = None,
                             check_tf_keras: bool = True) -> MultiWorkerResult:
    """Train one model with ``MultiWorkerMirroredStrategy`` in ``workers`` separate processes
    on this machine (loopback TCP), and compare what they ended with.

    Each worker writes its losses, its Keras 3 ``fit`` attempt and its final weights to
    ``folder`` (a temporary folder if None); ``check_tf_keras`` also tries tf_keras's ``fit``
    (about 3 s more, mostly importing it). Raises ``RuntimeError`` with the workers' stderr
    if one fails or the run takes longer than ``timeout_s``.
    """
    if workers < 1 or global_batch_size % workers:
        raise ValueError(f"global_batch_size ({global_batch_size}) must be a multiple of workers ({workers}).")
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="efficient-dl-multiworker-") as temporary:
            return run_multiworker_training(workers, steps, global_batch_size, seed, timeout_s, temporary,
                                            check_tf_keras)
    import numpy as np

    from efficient_dl.hardware import cpu_cores

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    threads = max(1, cpu_cores() // workers)
    # The parent loads the digits once and hands every worker the same file: each saves
    # loading them itself (3 s), and no worker has a reason to look for a data source.
    x, y = training_examples(steps, global_batch_size, seed)
    np.savez(folder / EXAMPLES_FILE, x=x, y=y)
    ports = free_ports(workers)
    start = time.perf_counter()
    arguments = ["--folder", str(folder), "--workers", str(workers), "--steps", str(steps),
                 "--global-batch-size", str(global_batch_size), "--seed", str(seed)]
    if not check_tf_keras:
        arguments.append("--no-tf-keras")
    processes = [_start_worker(folder, index, arguments, worker_environment(ports, index, threads))
                 for index in range(workers)]
    try:
        _wait_for(processes, folder, start + timeout_s, timeout_s)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    seconds = time.perf_counter() - start
    return _collect(folder, workers, seconds)


def _start_worker(folder: Path, index: int, arguments: list[str], environment: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "efficient_dl.distributed", "worker", *arguments]
    # Output to files, not pipes: a worker blocked on a full pipe would stall the whole cluster.
    out_path, err_path = folder / f"worker-{index}.stdout", folder / f"worker-{index}.stderr"
    with open(out_path, "wb") as stdout, open(err_path, "wb") as stderr:
        return subprocess.Popen(command, env=environment, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)


def _wait_for(processes, folder: Path, deadline: float, timeout_s: float) -> None:
    while True:
        codes = [process.poll() for process in processes]
        failed = [index for index, code in enumerate(codes) if code not in (None, 0)]
        if failed:  # the others would wait for it forever
            raise RuntimeError(f"Multi-worker training: worker {failed[0]} exited with status "
                               f"{codes[failed[0]]}.\n" + _stderr_tails(folder, len(processes)))
        if all(code == 0 for code in codes):
            return
        if time.perf_counter() > deadline:
            raise RuntimeError(
                f"Multi-worker training did not finish within {timeout_s:.0f} s, so its workers were stopped. "
                "A worker that waits for the others forever usually means one could not bind its port or "
                "reach 127.0.0.1; their stderr says more.\n" + _stderr_tails(folder, len(processes)))
        time.sleep(0.1)


def _stderr_tails(folder: Path, workers: int) -> str:
    tails = []
    for index in range(workers):
        path = folder / f"worker-{index}.stderr"
        text = path.read_text(errors="replace") if path.exists() else ""
        tails.append(f"--- worker {index} stderr (last {STDERR_TAIL_CHARS} characters) ---\n"
                     f"{text[-STDERR_TAIL_CHARS:].strip() or '(empty)'}")
    return "\n".join(tails)


def _collect(folder: Path, workers: int, seconds: float) -> MultiWorkerResult:
    import numpy as np

    results = [json.loads((folder / RESULT_FILE.format(index=index)).read_text()) for index in range(workers)]
    weights = [np.load(folder / WEIGHTS_FILE.format(index=index)) for index in range(workers)]
    reference = weights[0]
    difference = max((float(np.max(np.abs(other[name] - reference[name]))) if other[name].size else 0.0
                      for other in weights[1:] for name in reference.files), default=0.0)
    same_names = all(sorted(other.files) == sorted(reference.files) for other in weights[1:])
    first = results[0]
    return MultiWorkerResult(
        workers=workers, losses=first["losses"],
        keras3_fit_works=first["keras3_fit_works"], keras3_fit_error=first["keras3_fit_error"],
        weights_identical=same_names and difference <= WEIGHTS_TOLERANCE, seconds=seconds,
        keras3_fit_raised_in=first["keras3_fit_raised_in"],
        tf_keras_fit_works=first["tf_keras_fit_works"], tf_keras_fit_error=first["tf_keras_fit_error"],
        max_weight_difference=difference, phase_seconds=first["phase_seconds"])


# --- the worker's side ---------------------------------------------------------------------

def _one_line(error: BaseException) -> str:
    """``Type: message`` on one line; a message that spans lines (a PerReplica's repr does)
    keeps its first and last lines."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    message = lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"
    return f"{type(error).__name__}: {message}"


def _raised_in(error: BaseException) -> str:
    """The innermost Keras function the error passed through, e.g. ``_maybe_symbolic_build``."""
    import traceback

    names = [frame.name for frame in traceback.extract_tb(error.__traceback__)
             if f"{os.sep}keras{os.sep}" in frame.filename and "traceback_utils" not in frame.filename]
    return names[-1] if names else ""


def try_fit(strategy, keras_module, global_batch_size: int) -> tuple[str, str]:
    """Train ``classifier()`` for one step with ``keras_module``'s ``model.fit`` under
    ``strategy``: ("", "") if that works, else the error on one line and the Keras function
    that raised it."""
    import numpy as np
    import tensorflow as tf

    x = np.zeros((global_batch_size, 28 * 28), "float32")
    y = np.zeros((global_batch_size,), "int64")
    config = getattr(keras_module, "config", None)
    # Keras 3 hides its own frames from tracebacks; they say where fit gave up, so show them.
    filtering = getattr(config, "is_traceback_filtering_enabled", lambda: False)()
    if filtering:
        config.disable_traceback_filtering()
    try:
        with strategy.scope():
            model = classifier(keras_module)
            model.compile(optimizer="sgd", loss=keras_module.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch_size), epochs=1, verbose=0)
        return "", ""
    except Exception as error:  # the outcome is the finding: recorded, not raised
        return _one_line(error), _raised_in(error)
    finally:
        if filtering:
            config.enable_traceback_filtering()


def run_worker(folder: Path, workers: int, steps: int, global_batch_size: int, seed: int,
               check_tf_keras: bool = True) -> None:
    """One worker of ``run_multiworker_training``: TF_CONFIG says which."""
    import numpy as np

    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    seconds = {}
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        seconds[name] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    # No filtered_stderr() here: it holds stderr back until the block ends, and the stderr of
    # a worker that hangs or dies is what the parent shows. TF_CPP_MIN_LOG_LEVEL keeps it short.
    import keras
    import tensorflow as tf

    threads = int(os.environ.get("EFFICIENT_DL_WORKER_THREADS", "0"))
    if threads:  # the workers share this machine's cores; more threads each would only contend
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    lap("import")
    # Reads TF_CONFIG, starts this worker's gRPC server and waits until every worker is up.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if strategy.num_replicas_in_sync != workers:
        raise RuntimeError(f"Expected {workers} replicas, the strategy has {strategy.num_replicas_in_sync}.")
    lap("strategy")
    keras3_error, keras3_raised_in = try_fit(strategy, keras, global_batch_size)
    lap("keras3_fit")
    tf_keras_works, tf_keras_error = None, ""
    if check_tf_keras:
        try:
            import tf_keras
        except ImportError:
            pass  # recorded as None: not tried
        else:
            tf_keras_error, _ = try_fit(strategy, tf_keras, global_batch_size)
            tf_keras_works = not tf_keras_error
        lap("tf_keras_fit")
    with np.load(folder / EXAMPLES_FILE) as examples:
        x, y = examples["x"], examples["y"]
    losses, model = _train_custom_loop(strategy, x[:steps * global_batch_size], y[:steps * global_batch_size],
                                       global_batch_size, seed)
    lap("custom_loop")
    weights = {f"w{i}": np.asarray(weight) for i, weight in enumerate(model.get_weights())}
    np.savez(folder / WEIGHTS_FILE.format(index=index), **weights)
    result = {"index": index, "losses": losses,
              "keras3_fit_works": not keras3_error, "keras3_fit_error": keras3_error,
              "keras3_fit_raised_in": keras3_raised_in,
              "tf_keras_fit_works": tf_keras_works, "tf_keras_fit_error": tf_keras_error,
              "phase_seconds": seconds}
    # Written last and renamed into place: the parent reads only complete results.
    path = folder / RESULT_FILE.format(index=index)
    path.with_suffix(".tmp").write_text(json.dumps(result))
    path.with_suffix(".tmp").replace(path)
    _barrier(strategy)


def _barrier(strategy) -> None:
    """Return only when every worker has got here: one all-reduce of nothing much."""
    import tensorflow as tf

    strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m efficient_dl.distributed",
                                     description="A worker of efficient_dl.distributed.run_multiworker_training.")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="train as the worker that TF_CONFIG names")
    worker.add_argument("--folder", type=Path, required=True)
    worker.add_argument("--workers", type=int, required=True)
    worker.add_argument("--steps", type=int, required=True)
    worker.add_argument("--global-batch-size", type=int, required=True)
    worker.add_argument("--seed", type=int, required=True)
    worker.add_argument("--no-tf-keras", action="store_true", help="skip the tf_keras fit check")
    args = parser.parse_args(argv)
    if "TF_CONFIG" not in os.environ:
        parser.error("TF_CONFIG is not set: run_multiworker_training() starts the workers and sets it.")
    run_worker(args.folder, args.workers, args.steps, args.global_batch_size, args.seed,
               check_tf_keras=not args.no_tf_keras)
    return 0


def _exit_now(status: int) -> None:
    # Leave at once, all workers together (run_worker ends at a barrier). A normal exit runs
    # TensorFlow's coordination-service shutdown, in which the chief waits for the heartbeats
    # of workers that have already gone (about 15 s), then logs "The tasks have crashed".
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    try:
        _exit_now(main())
    except SystemExit as stop:  # argparse's errors, already printed
        _exit_now(stop.code if isinstance(stop.code, int) else 1)
    except BaseException:  # noqa: BLE001 -- printed for the parent, which shows stderr's tail
        import traceback

        traceback.print_exc()
        _exit_now(1)
