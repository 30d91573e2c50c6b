"""``cuflow.config``: devices and execution settings, as in ``tf.config``."""
from . import devices as _device
from .kernels import cuda as _cuda

__all__ = ["PhysicalDevice", "list_physical_devices", "list_logical_devices", "experimental"]


class PhysicalDevice:
    """A device on this machine: ``name`` like ``'/physical_device:GPU:0'`` and ``device_type`` ('CPU'/'GPU')."""

    def __init__(self, name, device_type):
        self.name = name
        self.device_type = device_type

    def __repr__(self):
        return f"PhysicalDevice(name='{self.name}', device_type='{self.device_type}')"

    def __eq__(self, other):
        return isinstance(other, PhysicalDevice) and (self.name, self.device_type) == (other.name, other.device_type)

    def __hash__(self):
        return hash(self.name)


def _check_kind(device_type):
    if device_type is None:
        return None
    kind = str(device_type).upper()
    if kind not in ("CPU", "GPU"):
        raise ValueError(f"list_physical_devices: device_type must be 'CPU', 'GPU' or None, got {device_type!r}")
    return kind


def list_physical_devices(device_type=None):
    """The devices cuflow can use, e.g. ``[PhysicalDevice(name='/physical_device:GPU:0', device_type='GPU')]``."""
    return [PhysicalDevice(f"/physical_device:{d.kind}:{d.index}", d.kind)
            for d in _device.list_devices(_check_kind(device_type))]


def list_logical_devices(device_type=None):
    """Like :func:`list_physical_devices`, with ``/device:`` names."""
    return [PhysicalDevice(f"/device:{d.kind}:{d.index}", d.kind)
            for d in _device.list_devices(_check_kind(device_type))]


class _Experimental:
    """``cuflow.config.experimental``: TF32 switch and device facts."""

    def __init__(self):
        self._tf32 = False

    def enable_tensor_float_32_execution(self, enabled):
        """Allow TF32 tensor cores for float32 matmuls on the GPU (``Dense``, ``tf.matmul``): inputs rounded to 10
        mantissa bits (about 1e-3 relative error per product), float32 accumulation, several times the FP32 speed.

        Off by default, unlike TensorFlow (which turns it on): cuflow's float32 results then match NumPy/CPU results
        to float32 precision on every device, and gradient checks stay meaningful. Turn it on for training speed.
        bfloat16/float16 matmuls use tensor cores whatever this says.
        """
        self._tf32 = bool(enabled)

    def tensor_float_32_execution_enabled(self):
        """Whether float32 matmuls may use TF32 tensor cores (see :meth:`enable_tensor_float_32_execution`)."""
        return self._tf32

    def get_device_details(self, device):
        """Name and compute capability of a GPU (empty dict for the CPU), as in TF."""
        if device.device_type != "GPU":
            return {}
        index = int(device.name.rsplit(":", 1)[1])
        props = _cuda.cupy().cuda.runtime.getDeviceProperties(index)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return {"device_name": name, "compute_capability": (props["major"], props["minor"])}

    def get_memory_info(self, device):
        """``{'current': bytes used, 'peak': ...}`` of CuPy's memory pool on a GPU (as in TF)."""
        pool = _cuda.cupy().get_default_memory_pool()
        return {"current": pool.used_bytes(), "peak": pool.total_bytes()}


experimental = _Experimental()
