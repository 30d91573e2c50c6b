"""Fixtures for the mock GPU's kernel runner: modules compiled once per session, and sanitizer subprocesses."""
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cuflow.kernels import emu

HERE = Path(__file__).parent
KERNELS = HERE / "kernels.cu"
PLANTED = HERE / "planted_bugs.cu"
KERNEL_TEMPLATES = ("axpy<float, 4>", "axpy<double, 2>")
PLANTED_TEMPLATES = ("shared_off_by_one_tiled<64>",)
# The directory `cuflow` was imported from, for subprocesses.
PACKAGE_ROOT = Path(emu.__file__).parents[3]


@pytest.fixture(scope="session")
def built():
    """Compiles (or finds in the cache) every module these tests load, two compiler processes at a time."""
    if not emu.compiler_available():
        pytest.skip("the mock GPU needs g++ 10+ or clang++ 12+")
    jobs = [(source, templates, sanitizer) for sanitizer in (None, "memcheck", "racecheck")
            for source, templates in ((KERNELS, KERNEL_TEMPLATES), (PLANTED, PLANTED_TEMPLATES))]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: emu.build(job[0].read_text(), job[1], sanitizer=job[2], filename=job[0]), jobs))


@pytest.fixture(scope="session")
def kernels(built):
    return emu.Module.from_file(KERNELS, KERNEL_TEMPLATES)


@pytest.fixture(scope="session")
def planted(built):
    return emu.Module.from_file(PLANTED, PLANTED_TEMPLATES)


@pytest.fixture(scope="session")
def run_script(built):
    """Runs `code` in a fresh interpreter where `planted` and `kernels` are the two modules built with `sanitizer`.

    A sanitizer report, a failed assert or a __trap ends that process, never the test session.
    """
    def run(code, sanitizer=None, timeout=120):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                                        os.environ.get("PYTHONPATH")]))}
        if sanitizer:
            env.update(emu.sanitizer_env(sanitizer))
        prelude = ("import numpy as np\nfrom cuflow.kernels import emu\n"
                   f"planted = emu.Module.from_file({str(PLANTED)!r}, {PLANTED_TEMPLATES!r}, sanitizer={sanitizer!r})\n"
                   f"kernels = emu.Module.from_file({str(KERNELS)!r}, {KERNEL_TEMPLATES!r}, sanitizer={sanitizer!r})\n")
        # sys.executable, not a `python3` wrapper script: a shell started under libtsan crashes.
        return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    return run
