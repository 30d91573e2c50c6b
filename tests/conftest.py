"""Shared fixtures: the `device` fixture runs a test on the CPU and, marked `gpu`, on the GPU.

The GPU is a real one, or the mock GPU under CUFLOW_MOCK_GPU=1|memcheck|racecheck (docs/testing.md). The sanitizer
modes restart pytest with the sanitizer runtime preloaded, and skip tests marked `slow_on_mock` (see
cuflow/kernels/emu/mock_cupy/pytest_plugin.py).
"""
import numpy as np
import pytest

import cuflow
from cuflow import testing
from cuflow.kernels import cuda
from cuflow.kernels.emu.mock_cupy import pytest_plugin as mock_gpu_plugin


def pytest_configure(config):
    mock_gpu_plugin.configure(config)


def _gpu_present():
    return cuda.gpu_count() > 0


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    """Yields '/CPU:0' or '/GPU:0' with that device active; gpu cases skip with the reason when none is present."""
    if request.param == "gpu" and not _gpu_present():
        pytest.skip(f"no GPU: {cuda.unavailable_reason()}")
    name = "/CPU:0" if request.param == "cpu" else "/GPU:0"
    with cuflow.device(name):
        yield name


@pytest.fixture
def mock_gpu():
    """The mock GPU switched on for one test (in-process); the previous state comes back afterwards."""
    with testing.mock_gpu() as mode:
        yield mode


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=f"no GPU: {cuda.unavailable_reason()}")
    for item in items:
        if "gpu" in item.keywords and not _gpu_present() and "device" not in getattr(item, "fixturenames", ()):
            item.add_marker(skip)
    mock_gpu_plugin.skip_slow_on_mock(items)
