"""The stderr filter the autograder uses: it must drop TensorFlow's chatter and nothing else."""
import re
import subprocess
import sys

import pytest

from efficient_dl.quiet import STDERR_NOISE_PATTERN

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1795878894.057464    3052 port.cc:153] oneDNN custom operations are on.\n",
    "E0000 00:00:1795879120.701957    3801 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n",
    "W1128 15:04:05.123456  1234 gpu_device.cc:2344] Cannot dlopen some GPU libraries.\n",
    "WARNING:tensorflow:5 out of the last 5 calls to <function> triggered tf.function retracing.\n",
    "WARNING:absl:Compiled the loaded model, but the compiled metrics have yet to be built.\n",
    "/app/.venv/lib/python3.11/site-packages/keras/src/layers/core/dense.py:93: UserWarning: Do not pass an `input_shape`\n",
    "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8\n",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
]
REAL_OUTPUT = [
    "Traceback (most recent call last):\n  File \"<stdin>\", line 1\nAssertionError: wrong\n",
    "my debugging print to stderr\n",
    "Error: the answer is 42\n",
    "INFO: my own progress line\n",
]


@pytest.mark.parametrize("line", NOISE)
def test_logging_noise_is_dropped(line):
    assert re.search(STDERR_NOISE_PATTERN, line)


@pytest.mark.parametrize("text", REAL_OUTPUT)
def test_other_stderr_is_kept(text):
    assert not re.search(STDERR_NOISE_PATTERN, text)


def test_the_noise_tensorflow_prints_here_is_all_matched():
    """Whatever this TensorFlow build writes to stderr on import and first use is matched."""
    script = "import efficient_dl, keras; keras.layers.Dense(2)(keras.ops.ones((1, 3)))"
    stderr = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stderr
    unmatched = [line for line in stderr.splitlines() if line.strip() and not re.search(STDERR_NOISE_PATTERN, line)]
    assert not unmatched, unmatched


def test_an_int8_conversion_and_its_interpreter_print_only_matched_noise():
    """The converter's and LiteRT's own lines (from C++, past any Python setting) are all matched."""
    script = (
        "import efficient_dl, numpy as np, keras, tensorflow as tf\n"
        "from ai_edge_litert.interpreter import Interpreter\n"
        "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])\n"
        "converter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
        "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
        "converter.representative_dataset = lambda: ([np.ones((1, 4), np.float32)] for _ in range(3))\n"
        "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
        "converter.inference_input_type = converter.inference_output_type = tf.int8\n"
        "Interpreter(model_content=converter.convert()).allocate_tensors()\n"
    )
    stderr = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180).stderr
    assert "fully_quantize" in stderr and "XNNPACK" in stderr, "the lines this test is about were not printed"
    unmatched = [line for line in stderr.splitlines() if line.strip() and not re.search(STDERR_NOISE_PATTERN, line)]
    assert not unmatched, unmatched


def test_the_grader_uses_the_pattern():
    from pathlib import Path

    config = (Path(__file__).resolve().parents[1] / "autograder" / "nbgrader_config.py").read_text()
    assert "c.IgnorePattern.enabled = True" in config
    assert "c.IgnorePattern.pattern = STDERR_NOISE_PATTERN" in config


def test_filtered_stderr_drops_noise_and_keeps_real_messages():
    script = (
        "import os\n"
        "from efficient_dl.quiet import filtered_stderr\n"
        "with filtered_stderr():\n"
        "    os.write(2, b'I0000 00:00:1795878894.057464    3052 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "    os.write(2, b'a real problem\\n')\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "os.write(2, b'after the block\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "a real problem\nafter the block\n"


def test_importing_keras_inside_the_filter_is_silent():
    script = "from efficient_dl.quiet import filtered_stderr\nwith filtered_stderr():\n    import keras\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr
