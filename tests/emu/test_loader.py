"""The loader: source rewriting, kernel discovery, the compile cache, argument checks and clear errors."""
import ctypes

import numpy as np
import pytest

from cuflow.kernels import emu
from cuflow.kernels.emu import loader


def test_shared_declarations_are_rewritten_on_the_same_lines():
    source = ("__global__ void k(float* out) {\n"
              "    __shared__ float tile[16][17];  // __shared__ in a comment stays\n"
              "    extern __shared__ __align__(16) unsigned char raw[];\n"
              "    volatile __shared__ int flag; __shared__ Pair<float, int> pair; __shared__ int a[2], b[2];\n"
              '    const char* s = "__shared__ float not_code[4];";\n'
              "    __shared__\n        T staged\n        [N * 2];\n"
              "}\n")
    rewritten = loader._rewrite_shared(source)
    assert rewritten.count("\n") == source.count("\n")
    lines = rewritten.splitlines()
    assert "static ::cuemu::Shared<float[16][17]> cuemu_shared_tile;" in lines[1]
    assert "// __shared__ in a comment stays" in lines[1]
    assert "unsigned char* const raw = reinterpret_cast<unsigned char*>(::cuemu::dyn_shared_buffer);" in lines[2]
    assert "static ::cuemu::Shared<volatile int> cuemu_shared_flag;" in lines[3]
    assert "static ::cuemu::Shared<Pair<float, int>> cuemu_shared_pair;" in lines[3]
    assert "__shared__ int a[2], b[2];" in lines[3]  # several declarators: left to the __shared__ macro
    assert '"__shared__ float not_code[4];"' in lines[4]
    assert "static ::cuemu::Shared<T[N*2]> cuemu_shared_staged;" in lines[5]


def test_kernel_discovery_skips_templates_and_comments():
    source = """
        extern "C" __global__ void __launch_bounds__(256) plain(float* x) {}
        // __global__ void commented_out(float* x) {}
        template <int TILE>
        __global__ void tiled(float* x) {}
        __global__ void other(int n);
        __global__ void other(int n) {}
        extern "C" { __global__ void in_extern_block(int n) { if (n) {} } }
        namespace ns { __global__ void in_namespace(int n) {} }
        struct S { static void f(); };
        __global__ void after_all(const char* s = "{") {}
    """
    assert loader._find_kernels(source) == ["plain", "other", "in_extern_block", "after_all"]


def test_compile_errors_name_the_source_file_and_line():
    source = 'extern "C" __global__ void broken(float* x) {\n    x[0] = undefined_name;\n}\n'
    with pytest.raises(emu.CompileError, match=r"(?s)could not compile broken\.cu.*broken\.cu:2:.*undefined_name"):
        emu.Module(source, filename="broken.cu")


def test_modules_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("CUFLOW_HOME", str(tmp_path))
    source = 'extern "C" __global__ void fill(int* x, int v) { x[threadIdx.x] = v; }'
    path, kernels = emu.build(source)
    assert path.parent == tmp_path / "emu-cache" and kernels == {"fill": 0}
    stamp = path.stat().st_mtime_ns
    assert emu.build(source)[0] == path and path.stat().st_mtime_ns == stamp
    assert emu.build(source, options=("-DUNUSED=1", "-arch=sm_90"))[0] != path  # -D changes the build, -arch is ignored
    assert not list((tmp_path / "emu-cache").glob("*.tmp"))
    x = np.zeros(3, np.int32)
    emu.Module(source).get_function("fill")((1,), (3,), (x, np.int32(4)))
    assert x.tolist() == [4, 4, 4]


def test_unknown_kernel_lists_the_available_ones(kernels):
    with pytest.raises(KeyError, match=r"no kernel 'sgemm'.*'sgemm_tiled'.*'axpy<float, 4>'"):
        kernels.get_function("sgemm")


def test_kernel_signature(kernels):
    assert repr(kernels.get_function("sgemm_tiled")) == \
        "<mock GPU kernel sgemm_tiled(float*, float*, float*, int, int, int)>"


@pytest.mark.parametrize("args,message", [
    ((np.zeros(4, np.float32),), r"takes 6 arguments"),
    ((np.zeros(4, np.float64),) + (np.zeros(4, np.float32),) * 2 + (np.int32(1),) * 3, r"argument 0 .* float\*; got a float64 array"),
    ((np.zeros(4, np.float32),) * 3 + (1, np.int32(1), np.int32(1)), r"argument 3 .* is int \(4 bytes\); got a Python int \(passed as int64, as CuPy does\): pass numpy.int32"),
    ((np.zeros(4, np.float32),) * 3 + (np.float32(1),) + (np.int32(1),) * 2, r"argument 3 .* is int .*got a float32"),
    ((np.zeros(4, np.float32),) * 3 + (np.zeros(1, np.int32),) + (np.int32(1),) * 2, r"argument 3 .* scalar; got an array"),
    ((1.0,) + (np.zeros(4, np.float32),) * 2 + (np.int32(1),) * 3, r"argument 0 .* is a float\*: pass an array, got float"),
])
def test_bad_arguments_are_rejected_before_launch(kernels, args, message):
    with pytest.raises(TypeError, match=message):
        kernels.get_function("sgemm_tiled")((1,), (16, 16), args)


def test_python_float_for_a_float_parameter_is_rejected(kernels):
    x = np.zeros(8, np.float32)
    with pytest.raises(TypeError, match=r"float \(4 bytes\); got a Python float \(passed as float64"):
        kernels.get_function("axpy<float, 4>")((1,), (64,), (0.5, x, x, np.int32(8)))


@pytest.mark.parametrize("grid,block,message", [
    ((1,), (32, 64), r"block \(32, 64, 1\) is larger than CUDA allows"),
    ((1,), (1, 1, 65), r"block \(1, 1, 65\)"),
    ((1, 70000), (32,), r"grid \(1, 70000, 1\)"),
    ((0,), (32,), r"grid must be 1 to 3 positive ints, got \(0,\)"),
])
def test_launch_configurations_cuda_refuses_are_rejected(kernels, grid, block, message):
    with pytest.raises(ValueError, match=message):
        kernels.get_function("halve")(grid, block, (np.zeros(64, np.float32),))


def test_too_much_dynamic_shared_memory(kernels):
    with pytest.raises(emu.KernelError, match=r"dynamic shared memory requested"):
        kernels.get_function("halve")((1,), (4,), (np.zeros(4, np.float32),), shared_mem=1 << 20)


def test_sanitized_module_needs_its_runtime_preloaded(built):
    if hasattr(ctypes.CDLL(None), "__asan_init"):
        pytest.skip("this process runs under AddressSanitizer")
    with pytest.raises(RuntimeError, match=r"sanitizer_env\('memcheck'\)"):
        emu.Module('extern "C" __global__ void k() {}', sanitizer="memcheck")


def test_sanitizer_env():
    env = emu.sanitizer_env("racecheck")
    assert env["LD_PRELOAD"].endswith(".so") and "halt_on_error=1" in env["TSAN_OPTIONS"]
    assert "detect_leaks=0" in emu.sanitizer_env("memcheck")["ASAN_OPTIONS"]
    with pytest.raises(ValueError, match="memcheck"):
        emu.sanitizer_env("helgrind")


def test_missing_compiler_error_states_the_minimum(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    loader._compiler.cache_clear()
    try:
        assert not emu.compiler_available()
        with pytest.raises(emu.CompilerNotFoundError, match=r"g\+\+ 10\+ or clang\+\+ 12\+ \(C\+\+20\)"):
            emu.build('extern "C" __global__ void k() {}')
    finally:
        monkeypatch.undo()
        loader._compiler.cache_clear()
