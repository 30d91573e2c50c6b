"""Compile CUDA C with the host C++ compiler and launch its kernels on the CPU (the mock GPU's kernel runner).

A `Module` takes the same CUDA source a `cupy.RawModule` takes, compiles it with ``cuda_emu.h`` force-included
into a shared library (cached on disk by a hash of source, header, flags and compiler) and hands out `Kernel`
objects that launch with CuPy's RawKernel convention, ``kernel(grid, block, args, shared_mem=0)``, on NumPy arrays.
Two source edits are made, keeping line numbers: ``__shared__`` declarations become holders from the emulation
header and ``extern __shared__ T x[];`` points at the launch's dynamic shared buffer. Each kernel gets an
exported ``extern "C"`` launcher, so template kernels are reached through ``name_expressions`` as in CuPy.
"""
import ctypes
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np

HEADER = Path(__file__).with_name("cuda_emu.h")
MIN_COMPILERS = {"g++": 10, "clang++": 12}
BASE_FLAGS = ("-std=c++20", "-O2", "-g", "-fPIC", "-shared", "-pthread", "-fvisibility=hidden", "-Wl,-z,defs")
SANITIZER_FLAGS = {
    None: (),
    "memcheck": ("-fsanitize=address", "-fno-omit-frame-pointer"),
    "racecheck": ("-fsanitize=thread",),
}
# Which runtime a sanitized module needs preloaded, and a symbol that shows it is there.
_RUNTIMES = {
    "memcheck": ({"g++": "libasan.so", "clang++": "libclang_rt.asan-x86_64.so"}, "__asan_init"),
    "racecheck": ({"g++": "libtsan.so", "clang++": "libclang_rt.tsan-x86_64.so"}, "__tsan_init"),
}
ORDERS = {"rotate": 0, "forward": 1, "reverse": 2, "random": 3}
_C_NAMES = {"f4": "float", "f8": "double", "i1": "signed char", "u1": "unsigned char", "i2": "short",
            "u2": "unsigned short", "i4": "int", "u4": "unsigned int", "i8": "long long",
            "u8": "unsigned long long", "b1": "bool", "v0": "void"}


class CompilerNotFoundError(RuntimeError):
    """No usable host C++ compiler: the mock GPU needs g++ 10+ or clang++ 12+ (C++20)."""


class CompileError(RuntimeError):
    """The host compiler rejected a kernel source; the message carries its output."""


class KernelError(RuntimeError):
    """A launch failed in a way the emulator reports without dying (deadlock, divergent warp op, bad config)."""


def _compiler_env():
    """The environment for running the compiler: without the sanitizer runtime this process may have preloaded
    (a compiler wrapper script under a preloaded libtsan can fail to start)."""
    return {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}


@functools.lru_cache(maxsize=None)
def _compiler():
    """(argv, family, identity line) of the first usable C++ compiler: $CXX, else g++, else clang++."""
    candidates = [shlex.split(os.environ["CXX"])] if os.environ.get("CXX") else [["g++"], ["clang++"]]
    found = []
    for argv in candidates:
        if not argv or not shutil.which(argv[0]):
            continue
        version = subprocess.run([*argv, "--version"], capture_output=True, text=True, env=_compiler_env()).stdout
        family = "clang++" if "clang" in version else "g++"
        dump = subprocess.run([*argv, "-dumpversion"], capture_output=True, text=True,
                              env=_compiler_env()).stdout.strip()
        major = int(re.match(r"\d+", dump).group()) if re.match(r"\d+", dump) else 0
        if major >= MIN_COMPILERS[family]:
            return tuple(argv), family, version.splitlines()[0] if version else dump
        found.append(f"{' '.join(argv)} {dump}")
    raise CompilerNotFoundError(
        "cuflow's mock GPU compiles CUDA kernels with the host C++ compiler and needs g++ 10+ or clang++ 12+ "
        "(C++20); " + (f"found only {', '.join(found)}" if found else "found none on PATH") +
        ". Install one (e.g. `apt-get install g++`) or point $CXX at it.")


def compiler_available():
    """True when a C++ compiler the mock GPU can use (g++ 10+ or clang++ 12+) is installed."""
    try:
        _compiler()
        return True
    except CompilerNotFoundError:
        return False


def sanitizer_env(kind):
    """Environment variables a Python subprocess needs to load modules built with ``sanitizer=kind``.

    Args:
        kind: ``"memcheck"`` (AddressSanitizer) or ``"racecheck"`` (ThreadSanitizer).

    Returns:
        A dict to merge into the subprocess environment: the sanitizer runtime in ``LD_PRELOAD`` (it must be
        loaded before anything else) and options that make a report end the process with a non-zero status.

    Example:
        >>> env = {**os.environ, **sanitizer_env("memcheck")}              # doctest: +SKIP
        >>> subprocess.run([sys.executable, "test_kernel.py"], env=env)     # doctest: +SKIP
    """
    if kind not in _RUNTIMES:
        raise ValueError(f"sanitizer must be 'memcheck' or 'racecheck', got {kind!r}")
    argv, family, _ = _compiler()
    library = _RUNTIMES[kind][0][family]
    path = subprocess.run([*argv, f"-print-file-name={library}"], capture_output=True, text=True,
                          env=_compiler_env()).stdout.strip()
    if not os.path.isabs(path):
        raise CompilerNotFoundError(f"{' '.join(argv)} has no {library}: install its sanitizer runtime")
    if kind == "memcheck":
        return {"LD_PRELOAD": path, "ASAN_OPTIONS": "detect_leaks=0"}
    return {"LD_PRELOAD": path, "OPENBLAS_NUM_THREADS": "1",
            "TSAN_OPTIONS": "halt_on_error=1 exitcode=66 report_signal_unsafe=0"}


def cache_dir():
    """Where compiled modules live: ``$CUFLOW_HOME/emu-cache`` (default ``~/.cuflow/emu-cache``)."""
    path = Path(os.environ.get("CUFLOW_HOME") or Path.home() / ".cuflow") / "emu-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- source preparation ---------------------------------------------------------------------------------------
_SKIP = r'(?P<skip>//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\')'
_ALIGN = r"(?:__align__|alignas)\s*\(\s*(\w+)\s*\)"
_ALIGN_ANY = r"(?:__align__|alignas)\s*\(\s*\w+\s*\)"
_SHARED = re.compile(
    _SKIP
    + r"|(?P<extern>\bextern\s+__shared__\s+(?P<etype>[^;]*?)\s*\b(?P<ename>[A-Za-z_]\w*)\s*\[\s*\]\s*;)"
    + r"|(?P<shared>(?:\bstatic\s+)?(?P<volatile>\bvolatile\s+)?\b__shared__\s+"
    + r"(?P<type>(?:" + _ALIGN_ANY + r"|<[^<>;{}]*>|[^;=(){}\[\],])+?)"
    + r"\s*\b(?P<name>[A-Za-z_]\w*)\s*(?P<dims>(?:\[[^\[\];]+\]\s*)*);)",
    re.S)
_KERNEL = re.compile(r"\b__global__\b((?:\s+|__launch_bounds__\s*\([^()]*\)|__attribute__\s*\(\(.*?\)\)|"
                     r"\b(?:void|static|inline|__noinline__|__forceinline__)\b)*)([A-Za-z_]\w*)\s*\(", re.S)


def _rewrite_shared(source):
    """Turns ``__shared__`` declarations into emulator holders, on the same lines."""
    def replace(m):
        if m.group("skip"):
            return m.group()
        newlines = "\n" * m.group().count("\n")
        if m.group("extern"):
            ctype = re.sub(_ALIGN, "", m.group("etype")).strip()
            return f"{ctype}* const {m['ename']} = reinterpret_cast<{ctype}*>(::cuemu::dyn_shared_buffer);{newlines}"
        align = re.search(_ALIGN, m.group("type"))
        ctype = (m.group("volatile") or "") + re.sub(_ALIGN, "", m.group("type")).strip()
        dims = re.sub(r"\s+", "", m.group("dims"))
        holder = f"cuemu_shared_{m['name']}"
        args = f"{ctype}{dims}" + (f", {align.group(1)}" if align else "")
        return (f"static ::cuemu::Shared<{args}> {holder}; static auto& {m['name']} = {holder}.get();{newlines}")
    return _SHARED.sub(replace, source)


def _find_kernels(source):
    """Names of the ``__global__`` functions a launcher can reach by name: not templates, and at global scope
    (inside ``extern "C" {}`` at most). The others are exported through name_expressions, as with CuPy."""
    text = re.sub(_SKIP, lambda m: re.sub(r"[^\n]", " ", m.group()), source, flags=re.S)
    text = re.sub(r"(?m)^[ \t]*#.*$", "", text)
    names, scopes = [], []
    for m in re.finditer(r"[{}]|\b__global__\b", text):
        statement = text[max(text.rfind(c, 0, m.start()) for c in ";{}") + 1:m.start()]
        if m.group() == "{":
            scopes.append("extern" if re.search(r"\bextern\s*$", statement) else "other")
        elif m.group() == "}":
            scopes = scopes[:-1]
        elif "other" not in scopes and not re.search(r"\btemplate\b", statement):
            kernel = _KERNEL.match(text, m.start())
            if kernel and kernel.group(2) not in names:
                names.append(kernel.group(2))
    return names


def _prepare(source, name_expressions, filename):
    """The text g++ compiles (source with #line, then one launcher per kernel) and {kernel name: launcher index}."""
    names = list(dict.fromkeys([*_find_kernels(source), *name_expressions]))
    shims = []
    for i, name in enumerate(names):
        shims.append(
            f'extern "C" __attribute__((visibility("default"))) int cuemu_launch_{i}(const unsigned* grid, '
            f"const unsigned* block, size_t shared, void** args, int order, unsigned long long seed) {{\n"
            f"    return ::cuemu::launch(&{name}, {json.dumps(name)}, grid, block, shared, args, order, seed);\n}}\n"
            f'extern "C" __attribute__((visibility("default"))) const char* cuemu_signature_{i}() {{\n'
            f"    return ::cuemu::signature(&{name});\n}}\n")
    text = (f"#line 1 {json.dumps(str(filename))}\n{_rewrite_shared(source)}\n"
            f'#line 1 "<cuflow mock GPU launchers>"\n' + "".join(shims))
    return text, {name: i for i, name in enumerate(names)}


def _user_flags(options):
    """The NVRTC/nvcc options that mean the same to g++ (-D, -U, -I); the others (-arch, -std, ...) don't apply."""
    flags, options = [], list(options)
    for i, opt in enumerate(options):
        if opt in ("-D", "-U", "-I") and i + 1 < len(options):
            flags.append(opt + options[i + 1])
        elif opt[:2] in ("-D", "-U", "-I") and len(opt) > 2:
            flags.append(opt)
    return flags


def build(source, name_expressions=(), options=(), sanitizer=None, *, filename="kernel.cu"):
    """Compiles a CUDA source for the mock GPU, or finds it in the cache; does not load it.

    Returns:
        ``(path of the shared library, {kernel name: launcher index})``.

    Raises:
        CompileError: with the compiler's output, whose locations name ``filename``.
        CompilerNotFoundError: no g++ 10+ / clang++ 12+.
    """
    if sanitizer not in SANITIZER_FLAGS:
        raise ValueError(f"sanitizer must be None, 'memcheck' or 'racecheck', got {sanitizer!r}")
    argv, family, identity = _compiler()
    text, kernels = _prepare(source, tuple(name_expressions), filename)
    flags = [*BASE_FLAGS, *SANITIZER_FLAGS[sanitizer], *_user_flags(options), "-include", str(HEADER)]
    if sanitizer == "memcheck" and family == "g++":
        flags.append("-fsanitize-sections=cuemu_shared")  # redzones for the `__shared__` macro's fallback statics
    digest = hashlib.sha256("\0".join([identity, *flags, HEADER.read_text(), text]).encode()).hexdigest()[:32]
    cache = cache_dir()
    library = cache / f"{digest}.so"
    if not library.exists():
        unique = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        src = cache / f"{digest}.cu"
        tmp_src = cache / f"{digest}.{unique}.cu.tmp"
        tmp_src.write_text(text)
        os.replace(tmp_src, src)  # kept next to the library for debuggers
        tmp = cache / f"{digest}.{unique}.so.tmp"
        command = [*argv, *flags, "-x", "c++", str(src), "-o", str(tmp)]
        result = subprocess.run(command, capture_output=True, text=True, env=_compiler_env())
        if result.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise CompileError(f"the mock GPU could not compile {filename}:\n{result.stderr.strip()}\n"
                               f"(command: {' '.join(command)})")
        os.replace(tmp, library)
    return library, kernels


# --- modules and kernels --------------------------------------------------------------------------------------
class Module:
    """CUDA source compiled for the CPU; the mock GPU's `cupy.RawModule`.

    Args:
        source: CUDA C/C++ text, exactly as NVRTC would get it.
        name_expressions: template instantiations to export, e.g. ``("sgemm<float, 16>",)``; non-template
            ``__global__`` functions are found by themselves.
        options: NVRTC-style options; ``-D``/``-U``/``-I`` are passed on, the rest ignored.
        sanitizer: None, ``"memcheck"`` (AddressSanitizer) or ``"racecheck"`` (ThreadSanitizer); the process must
            have been started with `sanitizer_env` of the same kind.
        filename: the name compiler messages and sanitizer reports use for the source.

    Example:
        >>> mod = Module('extern "C" __global__ void twice(float* x) { x[threadIdx.x] *= 2; }')
        >>> x = np.ones(4, np.float32)
        >>> mod.get_function("twice")((1,), (4,), (x,))
        >>> x.tolist()
        [2.0, 2.0, 2.0, 2.0]
    """

    def __init__(self, source, name_expressions=(), options=(), sanitizer=None, *, filename="kernel.cu"):
        if sanitizer is not None and sanitizer in _RUNTIMES:
            if not hasattr(ctypes.CDLL(None), _RUNTIMES[sanitizer][1]):
                raise RuntimeError(
                    f"a {sanitizer} module needs its sanitizer runtime loaded first: start this Python process "
                    f"with the variables from cuflow.kernels.emu.sanitizer_env({sanitizer!r}) "
                    f"(CUFLOW_MOCK_GPU={sanitizer} does this for the test suite)")
        self.sanitizer = sanitizer
        self.filename = str(filename)
        self.path, self._kernels = build(source, name_expressions, options, sanitizer, filename=filename)
        self._lib = ctypes.CDLL(str(self.path))
        self._lib.cuemu_last_error.restype = ctypes.c_char_p
        self._functions = {}

    @classmethod
    def from_file(cls, path, name_expressions=(), options=(), sanitizer=None):
        """A Module from a ``.cu`` file; messages point at that file."""
        path = Path(path)
        return cls(path.read_text(), name_expressions, options, sanitizer, filename=path)

    @property
    def kernel_names(self):
        """The kernels this module exports: its non-template kernels and its name expressions."""
        return list(self._kernels)

    def get_function(self, name):
        """The `Kernel` called ``name`` (a kernel name or one of the name expressions)."""
        if name not in self._kernels:
            raise KeyError(f"{self.filename} has no kernel {name!r}; it has {self.kernel_names} (template kernels "
                           f"are reached through name_expressions, e.g. 'sgemm<float, 16>')")
        if name not in self._functions:
            self._functions[name] = Kernel(self, name, self._kernels[name])
        return self._functions[name]

    def get_global(self, name):
        """Address of a ``__constant__`` variable at namespace scope (what `cupy.RawModule.get_global` points at)."""
        try:
            return ctypes.addressof(ctypes.c_char.in_dll(self._lib, name))
        except ValueError:
            raise KeyError(f"{self.filename} has no __constant__ variable {name!r} at global namespace scope") from None

    def _last_error(self):
        return self._lib.cuemu_last_error().decode(errors="replace")


def _c_type(kind):
    return _C_NAMES.get(kind, f"a {kind[1:]}-byte struct" if kind[0] == "s" else kind)


class Kernel:
    """One kernel of a `Module`, launched like `cupy.RawKernel`: ``kernel(grid, block, args, shared_mem=0)``.

    ``args`` holds NumPy arrays for pointer parameters (their data pointers are passed) and NumPy scalars of the
    parameter's exact type for the others. Python ints and floats count as ``long long`` and ``double``, which is
    what CuPy passes for them, so handing one to an ``int`` or ``float`` parameter raises here instead of
    silently reading the wrong bytes on the GPU.
    """

    def __init__(self, module, name, index):
        self.module, self.name = module, name
        self._launch = getattr(module._lib, f"cuemu_launch_{index}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.c_uint * 3, ctypes.c_uint * 3, ctypes.c_size_t, ctypes.c_void_p,
                                 ctypes.c_int, ctypes.c_ulonglong]
        signature = getattr(module._lib, f"cuemu_signature_{index}")
        signature.restype = ctypes.c_char_p
        self.signature = signature().decode()
        self.params = [(p.startswith("p:"), p.removeprefix("p:")) for p in self.signature.split()]

    def __repr__(self):
        types = ", ".join(_c_type(kind) + ("*" if pointer else "") for pointer, kind in self.params)
        return f"<mock GPU kernel {self.name}({types})>"

    def __call__(self, grid, block, args, shared_mem=0, *, order="rotate", seed=0):
        """Runs the kernel over ``grid`` blocks of ``block`` threads.

        Args:
            grid, block: an int or a tuple of up to three ints.
            args: tuple of arrays and NumPy scalars, one per kernel parameter.
            shared_mem: bytes of dynamic shared memory per block.
            order: the order the threads of a block run in between barriers: ``"rotate"`` (block i uses forward,
                reverse, random by i % 3), ``"forward"``, ``"reverse"`` or ``"random"``.
            seed: seeds the random order.

        Raises:
            TypeError: wrong number or types of arguments.
            ValueError: a grid or block CUDA would refuse.
            KernelError: a deadlock or an unsupported warp operation (the message names the block and thread).
        """
        if order not in ORDERS:
            raise ValueError(f"order must be one of {sorted(ORDERS)}, got {order!r}")
        grid3, block3 = self._dims(grid, "grid"), self._dims(block, "block")
        argv, keep_alive = self._pack(args)
        status = self._launch((ctypes.c_uint * 3)(*grid3), (ctypes.c_uint * 3)(*block3), int(shared_mem),
                              ctypes.addressof(argv), ORDERS[order], int(seed))
        del keep_alive
        if status:
            raise KernelError(self.module._last_error())

    def _dims(self, value, what):
        dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
        if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in dims):
            raise ValueError(f"kernel '{self.name}': {what} must be 1 to 3 positive ints, got {value!r}")
        dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
        limits = (2**31 - 1, 65535, 65535) if what == "grid" else (1024, 1024, 64)
        if any(d > lim for d, lim in zip(dims, limits)) or (what == "block" and np.prod(dims) > 1024):
            raise ValueError(f"kernel '{self.name}': {what} {dims} is larger than CUDA allows "
                             f"({'x, y, z at most ' + str(limits) if what == 'grid' else 'at most 1024 threads, z <= 64'})")
        return dims

    def _pack(self, args):
        """The ``void**`` argument array (cuLaunchKernel style) and the buffers it points into."""
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"kernel '{self.name}': args must be a tuple, got {type(args).__name__}")
        if len(args) != len(self.params):
            raise TypeError(f"kernel '{self.name}' takes {len(self.params)} arguments ({self!r}), got {len(args)}")
        argv = (ctypes.c_void_p * max(len(args), 1))()
        keep_alive = []
        for i, (arg, (pointer, kind)) in enumerate(zip(args, self.params)):
            slot = self._pointer(i, arg, kind) if pointer else self._scalar(i, arg, kind)
            argv[i] = ctypes.addressof(slot) if pointer else slot.ctypes.data
            keep_alive.append(slot)
        return argv, keep_alive

    def _pointer(self, i, arg, kind):
        interface = getattr(arg, "__array_interface__", None)
        if interface is None:
            raise TypeError(f"argument {i} of kernel '{self.name}' is a {_c_type(kind)}*: pass an array, "
                            f"got {type(arg).__name__}")
        dtype = np.dtype(interface["typestr"])
        raw = kind[0] in "sv" or kind[1:] == "1"  # void*, char* and struct pointers take any buffer
        if not raw and (dtype.itemsize != int(kind[1:]) or (kind[0] == "f") != (dtype.kind == "f")):
            raise TypeError(f"argument {i} of kernel '{self.name}' is a {_c_type(kind)}*; got a {dtype} array")
        return ctypes.c_void_p(interface["data"][0])

    def _scalar(self, i, arg, kind):
        if isinstance(arg, np.ndarray) or hasattr(arg, "__array_interface__") and not isinstance(arg, np.generic):
            raise TypeError(f"argument {i} of kernel '{self.name}' is a {_c_type(kind)} scalar; got an array")
        python = {bool: np.bool_, int: np.int64, float: np.float64, complex: np.complex128}.get(type(arg))
        value = np.asarray(python(arg) if python else arg)  # Python scalars become what CuPy passes for them
        dtype, size = value.dtype, int(kind[1:])
        same_kind = {"f": "f", "i": "iu", "u": "iu", "b": "b"}.get(kind[0], dtype.kind)
        if value.ndim != 0 or dtype.itemsize != size or dtype.kind not in same_kind:
            hint = f": pass numpy.{np.dtype(kind).name}(value)" if kind[0] in "fiub" and kind != "b1" else ""
            given = f"a Python {type(arg).__name__} (passed as {dtype}, as CuPy does)" if python else f"a {dtype}"
            raise TypeError(f"argument {i} of kernel '{self.name}' is {_c_type(kind)} ({size} bytes); "
                            f"got {given}{hint}")
        return np.array(value)  # a private, aligned copy
