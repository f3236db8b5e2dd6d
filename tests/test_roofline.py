"""efficient_dl.roofline: the roofs on known numbers, a Dense layer counted by hand, the peaks' sources."""
import math

import numpy as np
import pytest

from efficient_dl import roofline


def test_the_ridge_and_the_attainable_rate_on_the_h100s_published_figures():
    peak, bandwidth = 989e12, 3.35e12
    assert roofline.ridge_point(peak, bandwidth) == pytest.approx(295.2, rel=1e-3)
    assert roofline.attainable_flops_per_s(10.0, peak, bandwidth) == pytest.approx(33.5e12)  # memory-bound
    assert roofline.attainable_flops_per_s(1_000.0, peak, bandwidth) == pytest.approx(peak)  # compute-bound
    curve = roofline.attainable_flops_per_s(np.array([1.0, 295.2, 1e4]), 100.0, 1.0)
    np.testing.assert_allclose(curve, [1.0, 100.0, 100.0])


def test_a_dense_layers_intensity_is_its_flops_over_inputs_weights_and_outputs():
    import keras

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, name="hidden"),
                              keras.layers.ReLU(name="relu"), keras.layers.Dense(4, use_bias=False, name="out")])
    rows = {row.name: row for row in roofline.layer_intensities(model, batch_size=8)}
    assert list(rows) == ["hidden", "out"], "a layer without FLOPs has no intensity to plot"
    hidden = rows["hidden"]
    flops = 8 * (2 * 64 * 32 + 32)  # multiply-adds twice, plus the bias, for each of 8 examples
    moved = 4 * (8 * 64 + (64 * 32 + 32) + 8 * 32)  # float32 inputs, kernel and bias, outputs, once each
    assert (hidden.layer_class, hidden.flops, hidden.bytes) == ("Dense", flops, moved)
    assert hidden.intensity == pytest.approx(flops / moved)
    half = {row.name: row for row in roofline.layer_intensities(model, batch_size=8, bytes_per_value=2)}
    assert half["hidden"].intensity == pytest.approx(2 * hidden.intensity), "bfloat16 moves half the bytes"
    big = {row.name: row for row in roofline.layer_intensities(model, batch_size=1024)}
    assert big["hidden"].intensity > hidden.intensity, "the weights are read once per batch"


def test_every_published_peak_names_its_product_and_source():
    names = [row.name for row in roofline.PUBLISHED_PEAKS]
    assert len(set(names)) == len(names) >= 5
    for row in roofline.PUBLISHED_PEAKS:
        assert row.source.startswith("https://") and row.product
        assert row.bandwidth_bytes_per_s > 0
        peaks = [row.peak(dtype) for dtype in ("float32", "bfloat16", "float16")]
        assert any(p for p in peaks), row.name
        if row.float32_flops_per_s:
            assert all(p is None or p >= row.float32_flops_per_s for p in peaks), "matrix units beat float32"
    h100 = roofline.published_peak("NVIDIA H100")
    assert h100.peak("bfloat16") == 989e12 and "sparsity" in h100.note, "dense figures, not the sparse ones"
    assert roofline.published_peak("Google TPU v5e").peak("float32") is None
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        h100.peak("int8")


def test_the_measured_peak_and_bandwidth_are_positive_rates():
    flops = roofline.measure_peak_flops("float32", size=256, repeats=2)
    bandwidth = roofline.measure_bandwidth(size_bytes=8 * 2**20, repeats=2)
    assert math.isfinite(flops) and flops > 0
    assert math.isfinite(bandwidth) and bandwidth > 0


def test_the_plot_draws_both_roofs_and_labels_every_point():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    roofline.plot_roofline(ax, 1e11, 2e10, {"conv2": (90.0, 6e10), "dense1": (12.0, 1e10)}, title="this CPU")
    texts = [t.get_text() for t in ax.texts]
    assert "conv2" in texts and "dense1" in texts and any(t.startswith("ridge 5") for t in texts)
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_title() == "this CPU"
    roof = ax.lines[0].get_ydata()
    assert roof.max() == pytest.approx(1e11), "the compute roof is flat at the peak"
    plt.close(figure)
