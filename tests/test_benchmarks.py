"""The compression benchmark's fast mode: every variant made, measured and written down."""
import csv
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
