"""pytest support for the mock GPU: sanitizer runtimes at process start, and the ``slow_on_mock`` marker.

``CUFLOW_MOCK_GPU=memcheck pytest ...`` builds kernels with AddressSanitizer (``racecheck``: ThreadSanitizer), whose
runtime must be loaded before anything else in the process. :func:`configure` (called from ``pytest_configure``)
sees that it is not, and replaces the process with ``sys.executable -m pytest <the same arguments>`` under
:func:`cuflow.kernels.emu.sanitizer_env` (``os.execve``, no shell: pyenv's ``python3`` shim is a bash script, and
bash crashes under libtsan), with ``--capture=sys`` so that the report, written to file descriptor 2, is not lost in
pytest's capture when the process dies. A report ends the run with a non-zero status, naming the kernel and its
launch; ``abort_on_error`` makes it a SIGABRT, so pytest's faulthandler also prints the test that was running.

``@pytest.mark.slow_on_mock(reason, modes=("memcheck", "racecheck"))`` marks a test too slow for those sanitizer
modes (e.g. 65535 emulated blocks under ThreadSanitizer): it is skipped there, with the reason, and still runs under
``CUFLOW_MOCK_GPU=1``, the other modes and on a real GPU.

tests/conftest.py calls these; another project can load the module: ``-p cuflow.kernels.emu.mock_cupy.pytest_plugin``.
"""
import ctypes
import importlib.util
import os
import sys
from pathlib import Path

from ._kernels import sanitizer

__all__ = ["configure", "skip_slow_on_mock", "pytest_configure", "pytest_collection_modifyitems"]

REEXEC_ENV = "CUFLOW_SANITIZER_REEXEC"
_RUNTIME_SYMBOLS = {"memcheck": "__asan_init", "racecheck": "__tsan_init"}
# Added to the sanitizer's own options in the re-executed pytest: a report raises SIGABRT, so pytest's faulthandler
# prints the Python stack (the test that was running) after the sanitizer's report.
_ABORT_OPTIONS = {"memcheck": "ASAN_OPTIONS", "racecheck": "TSAN_OPTIONS"}
SANITIZER_MODES = ("memcheck", "racecheck")
MARKER = ("slow_on_mock(reason, modes=('memcheck', 'racecheck')): too slow under those sanitizer modes of the mock "
          "GPU (CUFLOW_MOCK_GPU); skipped there with the reason, run everywhere else")


def runtime_loaded(kind):
    """True when the sanitizer runtime for ``kind`` ("memcheck" or "racecheck") is loaded in this process."""
    return hasattr(ctypes.CDLL(None), _RUNTIME_SYMBOLS[kind])


def _started_as_pytest():
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    return name in ("pytest", "py.test") or (name == "__main__.py" and "pytest" in sys.argv[0])


def _sibling_library_dirs():
    """Library folders of NVIDIA's pip packages (``nvidia/*/lib``).

    The sanitizer runtimes intercept ``dlopen``, so a library that loads a sibling through its own ``$ORIGIN``
    RUNPATH no longer finds it (NVRTC: "failed to open libnvrtc-builtins.so"); naming the folders in
    ``LD_LIBRARY_PATH`` keeps the CUDA compile check (tests/kernels/test_compile.py) working in these runs.
    """
    spec = importlib.util.find_spec("nvidia")
    roots = spec.submodule_search_locations if spec is not None else None
    return [str(lib) for root in roots or () for lib in sorted(Path(root).glob("*/lib")) if lib.is_dir()]


def configure(config):
    """Registers the marker; under a sanitizer mode without its runtime, re-executes pytest with it preloaded."""
    config.addinivalue_line("markers", MARKER)
    kind = sanitizer()
    if kind is None or runtime_loaded(kind):
        return
    import pytest
    from .. import sanitizer_env
    if os.environ.get(REEXEC_ENV):
        raise pytest.UsageError(f"CUFLOW_MOCK_GPU={kind}: the sanitizer runtime is still not loaded after "
                                f"restarting pytest with LD_PRELOAD={os.environ.get('LD_PRELOAD')!r}")
    if not _started_as_pytest():
        raise pytest.UsageError(
            f"CUFLOW_MOCK_GPU={kind} needs its sanitizer runtime loaded at process start; this pytest runs inside "
            f"another program ({sys.argv[0]!r}), which cannot be restarted: start it with the variables from "
            f"cuflow.kernels.emu.sanitizer_env({kind!r})")
    env = {**os.environ, **sanitizer_env(kind), REEXEC_ENV: "1"}
    library_path = os.pathsep.join([*_sibling_library_dirs(), env.get("LD_LIBRARY_PATH", "")]).strip(os.pathsep)
    if library_path:
        env["LD_LIBRARY_PATH"] = library_path
    option = _ABORT_OPTIONS[kind]
    env[option] = f"{env.get(option, '')} abort_on_error=1".strip()
    # --capture=sys: the sanitizer writes its report to file descriptor 2, which pytest's default (fd) capture would
    # swallow when the process dies; an explicit --capture / -s given by the user comes later and wins.
    argv = [sys.executable, "-m", "pytest", "--capture=sys", *config.invocation_params.args]
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()  # give the new process the terminal, not pytest's capture files
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(config.invocation_params.dir)
    os.execve(sys.executable, argv, env)


def skip_slow_on_mock(items):
    """Skips the ``slow_on_mock`` tests whose ``modes`` include the sanitizer mode that is on."""
    kind = sanitizer()
    if kind is None:
        return
    import pytest
    for item in items:
        marker = item.get_closest_marker("slow_on_mock")
        if marker is not None and kind in marker.kwargs.get("modes", SANITIZER_MODES):
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "slow under emulation")
            item.add_marker(pytest.mark.skip(reason=f"slow_on_mock under CUFLOW_MOCK_GPU={kind}: {reason}"))


def pytest_configure(config):
    configure(config)


def pytest_collection_modifyitems(config, items):
    skip_slow_on_mock(items)
