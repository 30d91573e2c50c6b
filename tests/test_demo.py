"""README command 1 (the quick-start job) runs and learns: `python -m cuflow.demo`, with fewer epochs; it takes
MNIST when MNIST is cached, and asks for the network only with --download."""
import hashlib
import os
import socket
import subprocess
import sys
import urllib.error

import numpy as np
import pytest

from cuflow import demo
from cuflow.datasets import DownloadError, _download, mnist

pytest.importorskip("sklearn")


def test_quick_start_job_trains_and_prints_test_accuracy(tmp_path):
    env = dict(os.environ, CUFLOW_DEMO_EPOCHS="4", CUFLOW_HOME=str(tmp_path))  # an empty cache: the digits
    proc = subprocess.run([sys.executable, "-m", "cuflow.demo"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "digits, 1438 training and 359 test images (8x8)" in lines[0], lines[0]
    result = next(line for line in lines if line.startswith("test accuracy: "))
    assert float(result.split()[2]) > 0.8, result
    assert "on digits" in result and "4 epochs" in result and "device /" in result
    assert "Epoch 4/4" in proc.stderr  # the tqdm progress bar
    path = str(tmp_path / "demo" / "seed_cnn.keras")
    assert lines[-1].startswith(f"model saved to {path}"), lines[-1]
    from cuflow import keras
    model = keras.models.load_model(path)  # the saved model is the trained one
    _, (x_test, y_test) = keras.datasets.digits.load_data()
    _, accuracy = model.evaluate((x_test / 16.0).astype(np.float32)[..., None], y_test.astype(np.int32), verbose=0)
    assert f"{accuracy:.4f}" == result.split()[2]


def test_cached_mnist_is_used_without_the_network(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "datasets").mkdir()
    path = tmp_path / "datasets" / "mnist.npz"
    np.savez(path, x_train=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 64, dtype=np.uint8),
             x_test=rng.integers(0, 256, (16, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 16, dtype=np.uint8))
    monkeypatch.setenv("CUFLOW_HOME", str(tmp_path))
    monkeypatch.setattr(mnist, "FILE_HASH", hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setattr(_download, "_urlopen", lambda *a, **k: pytest.fail("the demo went to the network"))
    accuracy = demo.main(["--epochs", "1", "--no-save"])
    out = capsys.readouterr().out
    assert "mnist, 64 training and 16 test images (28x28)" in out and "1 epochs on mnist" in out
    assert 0.0 <= accuracy <= 1.0


def test_download_flag_offline_says_where_to_put_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("CUFLOW_HOME", str(tmp_path))

    def offline(request, timeout=None):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    monkeypatch.setattr(_download, "_urlopen", offline)
    with pytest.raises(DownloadError, match=f"{mnist.ORIGIN}.*place it at {tmp_path / 'datasets' / 'mnist.npz'}"):
        demo.main(["--download", "--no-save"])


def test_cuflow_info_prints_versions_and_devices():
    proc = subprocess.run([sys.executable, "-m", "cuflow", "info"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for expected in ("cuflow   0.", "python   3.", "numpy    ", "cupy     ", "optional nvidia-ml-py", "devices:",
                     "  /CPU:0", "default device: /"):
        assert expected in proc.stdout, proc.stdout


def test_cuflow_info_shows_gpu_name_and_memory_from_nvml(monkeypatch, capsys):
    from cuflow import __main__ as command, devices
    from cuflow.kernels import cuda
    gpus = [devices.Device("GPU", 0), devices.Device("GPU", 1)]
    monkeypatch.setattr(devices, "list_devices", lambda kind=None: gpus if kind == "GPU" else [devices.CPU, *gpus])
    monkeypatch.setattr(devices, "default_device", lambda: gpus[0])
    monkeypatch.setattr(cuda, "is_mock", lambda: False)

    def gpu_info(index):
        if index == 1:
            raise RuntimeError("NVML Shared Library Not Found")
        return {"name": "NVIDIA H100 80GB HBM3", "memory_total": 80 * 2**30, "memory_used": 2**29,
                "utilization_gpu": 7, "utilization_memory": 1, "driver": "580.1"}
    monkeypatch.setattr(devices, "gpu_info", gpu_info)
    command.main(["info"])
    out = capsys.readouterr().out
    assert "/GPU:0  NVIDIA H100 80GB HBM3, 0.5 / 80.0 GiB used, 7% busy, driver 580.1" in out
    assert "/GPU:1  (NVML could not describe it: RuntimeError: NVML Shared Library Not Found)" in out
    assert "default device: /GPU:0" in out
