"""A model trained on the TensorFlow backend runs unchanged on JAX: the path chapter 06 gives TPU users.

Keras picks its backend once per process (KERAS_BACKEND), so each side runs in its own process.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("jax", reason="JAX is not installed: pip install jax==0.10.2")

TRAIN_ON_TENSORFLOW = textwrap.dedent("""
    import sys
    import efficient_dl
    from efficient_dl import baselines, data
    import keras
    import numpy as np

    assert keras.backend.backend() == "tensorflow"
    keras.utils.set_random_seed(0)
    splits = data.load_mnist(source="sample")
    model = baselines.compile_baseline_cnn(baselines.baseline_cnn())
    model.fit(splits.x_train[:512], splits.y_train[:512], batch_size=64, epochs=1, verbose=0)
    model.save(sys.argv[1])
    np.save(sys.argv[2], keras.ops.convert_to_numpy(model(splits.x_test[:200])))
""")
SCORE_ON_JAX = textwrap.dedent("""
    import sys
    sys.modules["tensorflow"] = None  # as on a TPU runtime without TensorFlow: importing it fails
    import keras
    import numpy as np
    from efficient_dl import data

    assert keras.backend.backend() == "jax"
    splits = data.load_mnist(source="sample")
    model = keras.saving.load_model(sys.argv[1])
    np.save(sys.argv[2], np.asarray(model(splits.x_test[:200])))
""")


def _run(script, backend, *arguments):
    environment = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
    completed = subprocess.run([sys.executable, "-c", script, *map(str, arguments)], env=environment,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]


@pytest.mark.notebook
def test_a_keras_file_trained_on_tensorflow_predicts_the_same_on_jax(tmp_path):
    model_file = tmp_path / "cnn.keras"
    _run(TRAIN_ON_TENSORFLOW, "tensorflow", model_file, tmp_path / "tensorflow.npy")
    _run(SCORE_ON_JAX, "jax", model_file, tmp_path / "jax.npy")
    on_tensorflow, on_jax = np.load(tmp_path / "tensorflow.npy"), np.load(tmp_path / "jax.npy")
    assert on_jax.shape == on_tensorflow.shape == (200, 10)
    np.testing.assert_allclose(on_jax, on_tensorflow, atol=1e-4)
    assert (on_jax.argmax(axis=1) == on_tensorflow.argmax(axis=1)).all(), "the same digit predicted for every image"
