"""Wrong answers, one or more per graded exercise: each must lose exactly its exercise's points.

A mutant names the answer cell it changes and a textual edit of the reference solution
(the `original` text must occur in the solution, so a rewrite of the solution that makes a
mutant stale fails loudly instead of silently testing nothing).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    answer_id: str  # grade_id of the answer cell; its grade cell is "test_" + answer_id
    mistake: str
    original: str
    replacement: str

    @property
    def test_id(self) -> str:
        return f"test_{self.answer_id}"


MUTANTS = {
    "ch01_compute_and_energy": [
        Mutant("ex1_parameter_formulas", "Dense bias counted per input instead of per output",
               "n_in * n_out + (n_out if use_bias else 0)", "n_in * n_out + (n_in if use_bias else 0)"),
        Mutant("ex1_parameter_formulas", "Conv2D kernel that ignores the input channels",
               "kernel_h * kernel_w * channels_in * filters", "kernel_h * kernel_w * filters"),
        Mutant("ex1_parameter_formulas", "square kernels assumed (kernel_h used twice)",
               "kernel_h * kernel_w * channels_in", "kernel_h * kernel_h * channels_in"),
        Mutant("ex2_convolution_flops", "multiply-adds (MACs) reported as FLOPs",
               "return 2 * multiply_adds", "return multiply_adds"),
        Mutant("ex3_weights_memory", "gibibytes (2**30) instead of gigabytes",
               "/ 1e9", "/ 2**30"),
        Mutant("ex3_weights_memory", "bfloat16 taken for a 4-byte type",
               '"bfloat16": 2', '"bfloat16": 4'),
        Mutant("ex4_adam_training_memory", "gradients forgotten (three copies)",
               "copies = 4", "copies = 3"),
        Mutant("ex5_training_compute", "forward pass only (2·N·D)",
               "return 6 * n_params * n_tokens", "return 2 * n_params * n_tokens"),
        Mutant("ex5_training_compute", "utilisation ignored",
               "(peak_flops_per_s * utilization * n_accelerators)", "(peak_flops_per_s * n_accelerators)"),
        Mutant("ex6_training_energy_and_cost", "watt-seconds divided by 1000 (as if J were Wh)",
               "return joules / JOULES_PER_KWH", "return joules / 1000"),
        Mutant("ex6_training_energy_and_cost", "PUE left out",
               "seconds * watts_per_accelerator * n_accelerators * pue", "seconds * watts_per_accelerator * n_accelerators"),
        Mutant("ex6_training_energy_and_cost", "price per accelerator-hour applied per second",
               "seconds / 3600 * n_accelerators", "seconds * n_accelerators"),
        Mutant("ex7_batch_size_sweep", "latency reported in seconds under the name median_ms",
               '"median_ms": timing.median_s * 1e3', '"median_ms": timing.median_s'),
        Mutant("ex7_batch_size_sweep", "no warm-up: the first, slow calls are timed",
               "warmup=warmup, repeats=repeats", "warmup=0, repeats=repeats"),
        Mutant("ex7_batch_size_sweep", "model called in training mode",
               "model(x, training=False)", "model(x, training=True)"),
        Mutant("ex8_choose_batch_size", "largest batch within budget instead of highest throughput",
               'key=lambda row: row["throughput_per_s"]', 'key=lambda row: row["batch_size"]'),
        Mutant("ex8_choose_batch_size", "budget treated as strict (<)",
               'row["median_ms"] <= latency_budget_ms', 'row["median_ms"] < latency_budget_ms'),
    ],
}
