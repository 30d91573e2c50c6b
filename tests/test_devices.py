import numpy as np
import pytest

import cuflow as tf
from cuflow import errors
from cuflow.kernels import cuda

HAS_GPU = cuda.gpu_count() > 0


def test_default_device_is_gpu_when_present_else_cpu():
    t = tf.constant([1.0])
    assert t.device.endswith("GPU:0" if HAS_GPU else "CPU:0")
    assert t.device.startswith("/job:localhost/replica:0/task:0/device:")


def test_cpu_context_places_new_tensors_on_cpu():
    with tf.device("/CPU:0"):
        t = tf.ones((2, 2))
    assert t.device.endswith("CPU:0") and type(t._data) is np.ndarray


@pytest.mark.parametrize("name", ["/CPU:0", "cpu", "/device:CPU:0", "/job:localhost/replica:0/task:0/device:CPU:0"])
def test_device_names_are_parsed_like_tensorflow(name):
    with tf.device(name) as dev:
        assert dev.short == "/CPU:0"


@pytest.mark.parametrize("name", ["/TPU:0", "banana", "/CPU:1", ""])
def test_unknown_device_names_raise_value_error(name):
    with pytest.raises(ValueError, match="device"):
        with tf.device(name):
            pass


@pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU error")
def test_asking_for_a_gpu_without_one_is_a_clear_error():
    with pytest.raises(errors.UnavailableError, match=r"'/GPU:0' was asked for but no GPU is available"):
        with tf.device("/GPU:0"):
            pass
    with pytest.raises(errors.UnavailableError):
        tf.constant(1.0).gpu()
    assert tf.config.list_physical_devices("GPU") == []


def test_list_physical_devices():
    cpus = tf.config.list_physical_devices("CPU")
    assert [d.name for d in cpus] == ["/physical_device:CPU:0"] and cpus[0].device_type == "CPU"
    assert len(tf.config.list_physical_devices()) == 1 + cuda.gpu_count()
    with pytest.raises(ValueError, match="device_type"):
        tf.config.list_physical_devices("XPU")


def test_cpu_method_returns_host_tensor(device):
    t = tf.constant([1.0, 2.0])
    host = t.cpu()
    assert host.device.endswith("CPU:0")
    np.testing.assert_array_equal(host.numpy(), [1.0, 2.0])


@pytest.mark.gpu
def test_mixing_devices_raises_naming_both(device):
    if device != "/GPU:0":
        pytest.skip("needs a GPU tensor")
    on_gpu = tf.constant([1.0, 2.0])
    with tf.device("/CPU:0"):
        on_cpu = tf.constant([1.0, 2.0])
    with pytest.raises(errors.DeviceMismatchError, match=r"add: .*x is on /GPU:0, y is on /CPU:0"):
        tf.add(on_gpu, on_cpu)
    np.testing.assert_array_equal(tf.add(on_gpu, on_cpu.gpu()).numpy(), [2.0, 4.0])


@pytest.mark.gpu
@pytest.mark.skipif(cuda.is_mock() or not HAS_GPU, reason="NVML facts need real NVIDIA hardware")
def test_gpu_facts_from_nvml():
    pytest.importorskip("pynvml")
    facts = tf.devices.gpu_info(0)
    assert facts["name"] and facts["memory_total"] > facts["memory_used"] >= 0
    assert 0 <= facts["utilization_gpu"] <= 100 and facts["driver"]


def test_gpu_facts_for_a_missing_gpu_raise():
    with pytest.raises(errors.UnavailableError):
        tf.devices.gpu_info(cuda.gpu_count())
