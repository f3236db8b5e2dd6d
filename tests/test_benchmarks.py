"""The benchmarks' fast modes: every variant or configuration made, measured and written down."""
import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.mark.notebook
def test_the_compression_benchmark_writes_its_table_and_goals(tmp_path):
    completed = subprocess.run([sys.executable, str(REPOSITORY / "benchmarks" / "compression.py"), "--fast",
                                "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = {row["variant"]: row for row in csv.DictReader(open(tmp_path / "compression-sample.csv"))}
    assert len(rows) == 9
    int8 = rows["int8 (post-training)"]
    assert float(int8["raw_ratio"]) > 3.5, "int8 weights are a quarter of float32's"
    assert abs(float(rows["pruned 80% (.keras)"]["sparsity"]) - 0.80) < 0.01
    assert float(rows["pruned 80% + int8"]["gzip_ratio"]) > float(int8["gzip_ratio"]), "zeros compress"
    assert all(0.5 < float(row["accuracy"]) <= 1.0 for row in rows.values())
    report = (tmp_path / "compression-sample.md").read_text()
    assert report.startswith("Date: ") and "command: `python benchmarks/compression.py --fast" in report
    assert report.count("met: ") == 3


def run_accelerators(tmp_path, *arguments, environment=None, prelude=""):
    script = REPOSITORY / "benchmarks" / "accelerators.py"
    argv = [str(script), "--fast", "--out", str(tmp_path), *arguments]
    # The prelude runs first in the same process (runpy keeps sys.modules), e.g. to hide TensorFlow.
    code = f"import runpy, sys\n{prelude}\nsys.argv = {argv!r}\nrunpy.run_path({str(script)!r}, run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(environment or {})})


@pytest.mark.notebook
def test_the_accelerators_benchmark_writes_its_table_and_goal_on_tensorflow(tmp_path):
    completed = run_accelerators(tmp_path, "--batch-sizes", "32", environment={"KERAS_BACKEND": "tensorflow"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "accelerators-tensorflow-cpu.csv")))
    assert [row["configuration"] for row in rows] == ["float32", "float32 + XLA", "mixed_bfloat16",
                                                      "mixed_bfloat16 + XLA"]
    assert float(rows[0]["speedup"]) == 1.0 and all(float(row["examples_per_s"]) > 0 for row in rows)
    report = (tmp_path / "accelerators-tensorflow-cpu.md").read_text()
    assert report.startswith("Date: ") and "backend: tensorflow (keras 3." in report
    assert "command: `KERAS_BACKEND=tensorflow python benchmarks/accelerators.py --fast" in report
    assert "- not applicable on this device (CPU): mixed precision + XLA ≥ 2.5x" in report
    assert "This CPU " in report, "the CPU's low-precision verdict"


@pytest.mark.notebook
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (pip install jax jaxlib)")
def test_the_accelerators_benchmark_runs_on_jax_without_tensorflow(tmp_path):
    hide_tensorflow = "sys.modules['tensorflow'] = None  # import tensorflow now fails, as where it is absent"
    completed = run_accelerators(tmp_path, "--batch-sizes", "32", "--data", "synthetic",
                                 environment={"KERAS_BACKEND": "jax"}, prelude=hide_tensorflow)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "accelerators-jax-cpu.csv")))
    assert [row["xla"] for row in rows] == ["always (JAX)", "always (JAX)"]
    assert [row["policy"] for row in rows] == ["float32", "mixed_bfloat16"]
    report = (tmp_path / "accelerators-jax-cpu.md").read_text()
    assert "backend: jax (keras 3." in report and "jaxlib 0." in report
    assert "every training step is compiled by XLA" in report
