"""efficient_dl.hardware on a machine without an accelerator (the case every student may hit)."""
import pytest

from efficient_dl import hardware


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    # TensorFlow logs CUDA's absence to stderr once per process, when it first looks for
    # devices; do that here, so the tests below see only what describe_hardware writes.
    tf.config.list_physical_devices()
    return tf


@pytest.fixture
def no_accelerator(monkeypatch, tf):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    for name in hardware.TPU_ENV_HINTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hardware, "TPU_DEVICE_FILE", "/nonexistent/accel0")


def test_cpu_only(no_accelerator, tf, capfd):
    capfd.readouterr()
    info = hardware.describe_hardware()
    out, err = capfd.readouterr()
    assert err == ""
    assert info.kind == "CPU"
    assert hardware.CPU_NOTICE in out and "Change runtime type" in out
    assert info.summary in out and info.cpu_cores >= 1 and info.cpu_model
    assert isinstance(info.strategy, tf.distribute.Strategy)
    with info.strategy.scope():
        assert tf.Variable(2.0) * 3 == 6.0


def test_quiet_when_not_verbose(no_accelerator, capfd):
    capfd.readouterr()
    assert hardware.describe_hardware(verbose=False).kind == "CPU"
    assert capfd.readouterr() == ("", "")


def test_unreachable_tpu_falls_back(no_accelerator, monkeypatch, tf, capfd):
    def unreachable(*args, **kwargs):
        raise ValueError("Please provide a TPU Name to connect to.")

    monkeypatch.setenv("TPU_NAME", "no-such-tpu")
    # The real resolver would ask the cloud metadata server; this one fails as it would.
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", unreachable)
    capfd.readouterr()
    info = hardware.describe_hardware()
    out, err = capfd.readouterr()
    assert info.kind == "CPU" and err == ""
    assert "TPU was expected but could not be reached" in out


def test_one_gpu_gets_one_device_strategy(no_accelerator, monkeypatch, tf, capfd):
    # Pretends to have a GPU; the strategy only names the device, so this runs on a CPU too.
    real = tf.config.list_physical_devices
    fake_gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [fake_gpu] if kind == "GPU" else real(kind))
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: {"device_name": "NVIDIA H200"})
    capfd.readouterr()
    info = hardware.describe_hardware()
    out, err = capfd.readouterr()
    assert (info.kind, info.devices, err) == ("GPU", ("NVIDIA H200",), "")
    assert isinstance(info.strategy, tf.distribute.OneDeviceStrategy)
    assert hardware.CPU_NOTICE not in out and "1 × NVIDIA H200" in out
