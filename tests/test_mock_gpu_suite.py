"""The gpu-marked tests once more, on the mock GPU: CI has no GPU, so this is what runs the GPU backend and our CUDA
kernels there — plainly, under memcheck (AddressSanitizer) and under racecheck (ThreadSanitizer).

Each run is a pytest subprocess because the sanitizer runtimes must be preloaded at process start.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cuflow.kernels import cuda
from cuflow.kernels.emu import compiler_available

ROOT = Path(__file__).resolve().parent.parent
RUNS = {
    "mock": ("1", ["-m", "gpu"]),
    "memcheck": ("memcheck", ["-m", "gpu"]),
    "racecheck": ("racecheck", ["tests/kernels/test_gpu_parity.py"]),  # TSan is ~20x slower: the kernel suite
}

pytestmark = [
    pytest.mark.skipif(cuda.is_mock(), reason="already running on the mock GPU"),
    pytest.mark.skipif(not cuda.is_mock() and cuda.gpu_count() > 0, reason="a real GPU runs the gpu tests itself"),
    pytest.mark.skipif(not compiler_available(), reason="the mock GPU needs g++ 10+ or clang++ 12+"),
]


@pytest.mark.parametrize("run", list(RUNS))
def test_gpu_tests_pass_on_the_mock_gpu(run):
    mode, args = RUNS[run]
    env = dict(os.environ, CUFLOW_MOCK_GPU=mode)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=1500)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"CUFLOW_MOCK_GPU={mode} pytest {' '.join(args)} failed:\n{output[-6000:]}"
    passed = re.findall(r"(\d+) passed", proc.stdout)
    assert passed and int(passed[-1]) > 0, f"no test ran under CUFLOW_MOCK_GPU={mode}:\n{output[-2000:]}"
