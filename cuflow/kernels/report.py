"""The kernel report: registers, shared memory, spills, occupancy and SASS instruction mix of every kernel, no GPU.

``python -m cuflow.kernels.report [--arch sm_80 sm_90] [--module NAME ...] [--json] [--jobs N]`` compiles every
module of :data:`cuflow.kernels.compile.MODULES` for each arch to cubin (``compile.compile_module``: NVRTC through
NVIDIA's ``cuda-bindings``, cached per process) and reads each cubin with ``cuobjdump`` from PyPI
(``nvidia-cuda-cuobjdump``; its ``-sass`` needs ``nvdisasm`` from ``nvidia-cuda-nvdisasm``). One row per kernel
instance:

- ``registers`` per thread, ``shared_bytes`` (static shared memory per block), ``dynamic_shared_bytes`` (what
  the launcher passes, from compile.py's table; the occupancy counts both), ``spill_bytes`` (per-thread local
  memory: ``STACK + LOCAL`` of ``cuobjdump -res-usage``; NVRTC cubins use the ABI, so ptxas puts register spills and
  local arrays in the stack frame and reports them as STACK, with LOCAL 0), and ``ldl``/``stl``, the local-memory
  loads and stores in the SASS (spill traffic);
- ``threads`` per block: the ``__launch_bounds__`` the cubin records (``EIATTR_MAX_THREADS`` in ``.nv.info``,
  ``threads_from = "launch_bounds"``), else the launch configuration in compile.py's tables (``GEMM_THREADS`` for the
  GEMM/conv tilings, ``POOL_THREADS`` for pooling; ``threads_from = "compile.py"``);
- the theoretical occupancy (``blocks_per_sm``, ``warps_per_sm``, ``occupancy`` = warps / max warps, and
  ``limited_by``), computed as CUDA's occupancy calculator (``cuda_occupancy.h``) does, see :func:`occupancy`;
- the instruction mix of the SASS: ``hmma``/``hgmma`` (tensor cores, ``mma.sync``/``wgmma``), ``ldgsts``
  (``cp.async``; ``ldgsts128`` the 16-byte ones), ``lds128``/``sts128``/``ldg128`` (16-byte shared loads, shared stores, global loads), ``ffma``,
  ``dfma``, ``bar_sync`` (``__syncthreads``), ``instructions`` (all but the ``NOP`` padding), and ``opcodes``, the
  count of every mnemonic (``LDG.E.128.CONSTANT`` counts as ``LDG``).

:func:`report` returns the rows as dicts (CI asserts the properties each kernel is built for in
``tests/kernels/test_report.py``); :func:`analyze_cubin` reads any cubin, e.g. one from ``compile.compile_source``.
The tools are found under ``site-packages/nvidia/cu*/bin`` (where the PyPI wheels put them), then on ``PATH``.
"""
import argparse
import collections
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from cuflow.kernels import compile as kernels_compile

__all__ = [
    "ArchLimits", "ARCH_LIMITS", "ToolsMissing", "find_tools", "occupancy", "demangle", "analyze_cubin", "report",
    "format_table", "main",
]

PIP_HINT = "pip install nvidia-cuda-nvdisasm nvidia-cuda-cuobjdump"


# --- Per-architecture limits (CUDA C++ Programming Guide, "Technical Specifications per Compute Capability") -------
@dataclasses.dataclass(frozen=True)
class ArchLimits:
    regs_per_sm: int = 65536
    max_warps_per_sm: int = 64
    max_blocks_per_sm: int = 32
    smem_per_sm: int = 164 * 1024     # the largest shared-memory carveout a block may use
    reserved_smem_per_block: int = 1024  # the driver's reservation per block (sm_80 and later)
    smem_granularity: int = 128
    reg_granularity: int = 256        # registers are allocated per warp in units of 256
    max_regs_per_block: int = 65536
    sub_partitions: int = 4           # the register file is split over the SM's 4 schedulers
    warp_size: int = 32


ARCH_LIMITS = {
    "sm_80": ArchLimits(smem_per_sm=164 * 1024),
    "sm_90": ArchLimits(smem_per_sm=228 * 1024),
    "sm_90a": ArchLimits(smem_per_sm=228 * 1024),
}


def _ceil_to(x, unit):
    return -(-x // unit) * unit


def occupancy(arch, registers, threads, shared_bytes):
    """Theoretical occupancy of a kernel on one SM of ``arch``, as ``cudaOccupancyMaxActiveBlocksPerMultiprocessor``.

    With W = ceil(threads / 32) warps per block:

    - registers: a warp holds ``R = ceil(registers * 32 / 256) * 256`` of them; each of the 4 sub-partitions has
      ``65536 / 4`` registers, so ``floor(16384 / R) * 4`` warps fit, and ``floor(that / W)`` blocks (none if
      ``R * ceil(W / 4) * 4`` passes the 65536 registers a block may have);
    - shared memory: a block takes ``ceil((shared_bytes + 1024 reserved) / 128) * 128`` of the SM's 164 KB (sm_80)
      or 228 KB (sm_90);
    - warps: ``floor(64 / W)`` blocks; blocks: at most 32.

    Returns ``{"blocks_per_sm", "warps_per_sm", "occupancy", "limited_by"}`` (occupancy = warps / 64; limited_by
    names the binding limit: "warps", "blocks", "shared" or "registers", in that order on a tie). ``threads`` None
    gives Nones. Checked against ``cudaOccupancyMaxActiveBlocksPerMultiprocessor`` on an H200 for every kernel of
    the report (sm_90).
    """
    if threads is None:
        return {"blocks_per_sm": None, "warps_per_sm": None, "occupancy": None, "limited_by": None}
    lim = ARCH_LIMITS[arch]
    warps = -(-threads // lim.warp_size)
    regs_per_warp = _ceil_to(max(registers, 1) * lim.warp_size, lim.reg_granularity)
    if regs_per_warp * _ceil_to(warps, lim.sub_partitions) > lim.max_regs_per_block:
        by_regs = 0
    else:
        by_regs = (lim.regs_per_sm // lim.sub_partitions // regs_per_warp) * lim.sub_partitions // warps
    smem_per_block = _ceil_to(shared_bytes + lim.reserved_smem_per_block, lim.smem_granularity)
    limits = {  # a tie names the first: the SM's fixed caps before what the kernel could change
        "warps": lim.max_warps_per_sm // warps,
        "blocks": lim.max_blocks_per_sm,
        "shared": lim.smem_per_sm // smem_per_block,
        "registers": by_regs,
    }
    limited_by = min(limits, key=limits.get)
    blocks = limits[limited_by]
    return {"blocks_per_sm": blocks, "warps_per_sm": blocks * warps,
            "occupancy": blocks * warps / lim.max_warps_per_sm, "limited_by": limited_by}


# --- Tools ----------------------------------------------------------------------------------------------------------
class ToolsMissing(RuntimeError):
    """cuobjdump or nvdisasm is not installed."""


def _candidate_dirs():
    try:
        import nvidia  # namespace package of NVIDIA's PyPI wheels
        roots = [pathlib.Path(p) for p in nvidia.__path__]
    except ImportError:
        roots = []
    for root in roots:
        yield from sorted(root.glob("cu*/bin"), reverse=True)  # cu13 before cu12


def find_tools():
    """Paths of ``cuobjdump`` and ``nvdisasm``: from the PyPI wheels first, then ``PATH``. Raises ToolsMissing."""
    tools = {}
    for name in ("cuobjdump", "nvdisasm"):
        for directory in _candidate_dirs():
            if (directory / name).is_file() and os.access(directory / name, os.X_OK):
                tools[name] = str(directory / name)
                break
        else:
            found = shutil.which(name)
            if found is None:
                raise ToolsMissing(
                    f"the kernel report needs NVIDIA's {name}, not found in site-packages/nvidia/cu*/bin nor on "
                    f"PATH: {PIP_HINT} (or pip install 'cuflow[test]')")
            tools[name] = found
    return tools


def tool_versions(tools=None):
    """``{"cuobjdump": "13.5.37", "nvdisasm": ...}`` (the ``V...`` of ``--version``)."""
    tools = tools or find_tools()
    versions = {}
    for name, path in tools.items():
        out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
        match = re.search(r"\bV(\d+\.\d+\.\d+)", out)
        versions[name] = match.group(1) if match else out.strip().splitlines()[-1:]
    return versions


def _run(tools, args):
    """Runs cuobjdump with nvdisasm's folder on PATH (``-sass`` calls it); returns stdout."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(tools["nvdisasm"]), env.get("PATH", "")])
    result = subprocess.run([tools["cuobjdump"], *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"cuobjdump {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


# --- Parsers of cuobjdump's output ----------------------------------------------------------------------------------
_FUNCTION = re.compile(r"^\s*Function\s*:?\s*(\S+?):?\s*$")
_RESOURCE = re.compile(r"([A-Z_]+(?:\[\d+\])?):(\d+)")
# "        /*0040*/               @P0 BRA P1, 0x2330 ;" -> BRA (the encoding lines "/* 0x... */" do not match)
_INSTRUCTION = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Za-z0-9_]+)*)")


def parse_res_usage(text):
    """``cuobjdump -res-usage`` -> ``{mangled name: {"REG": .., "STACK": .., "SHARED": .., "LOCAL": .., ...}}``."""
    usage, name = {}, None
    for line in text.splitlines():
        match = _FUNCTION.match(line)
        if match:
            name = match.group(1)
        elif name is not None and "REG:" in line:
            usage[name] = {key: int(value) for key, value in _RESOURCE.findall(line)}
            name = None
    return usage


def parse_elf(text):
    """``cuobjdump -elf`` -> ``({mangled name: threads}, reserved_in_shared)``.

    The threads are those of kernels with ``__launch_bounds__`` (EIATTR_MAX_THREADS in their ``.nv.info.<name>``
    section; its value is the x y z of the bound). ``reserved_in_shared`` says whether the cubin has a
    ``.nv.shared.reserved`` section: then (sm_90 cubins) each kernel's ``.nv.shared.<name>`` section, hence
    ``cuobjdump -res-usage``'s SHARED, starts with the driver's 1 KB reservation, which the driver's
    ``sharedSizeBytes`` leaves out (checked on an H200: SHARED 34816 where the driver says 33792).
    """
    bounds, section, expect, reserved = {}, None, False, False
    for line in text.splitlines():
        stripped = line.strip()
        if ".nv.shared.reserved" in stripped:
            reserved = True
        if stripped.startswith(".nv.info."):
            section, expect = stripped[len(".nv.info."):], False
        elif stripped.startswith("."):
            section, expect = None, False
        elif section and "EIATTR_MAX_THREADS" in stripped:
            expect = True
        elif section and expect and stripped.startswith("Value:"):
            threads = 1
            for dim in stripped.split()[1:4]:
                threads *= int(dim, 16)
            bounds[section] = threads
            expect = False
    return bounds, reserved


def parse_sass(text):
    """``cuobjdump -sass`` -> ``{mangled name: Counter of full opcodes ("LDS.128", "BAR.SYNC.DEFER_BLOCKING")}``."""
    mix, counts = {}, None
    for line in text.splitlines():
        match = _FUNCTION.match(line)
        if match:
            counts = mix.setdefault(match.group(1), collections.Counter())
            continue
        if counts is not None:
            match = _INSTRUCTION.match(line)
            if match:
                counts[match.group(1)] += 1
    return mix


def _mnemonics(opcodes):
    """Counter of full opcodes -> Counter of mnemonics ("LDG.E.128.CONSTANT" -> "LDG")."""
    counts = collections.Counter()
    for op, n in opcodes.items():
        counts[op.split(".")[0]] += n
    return counts


def instruction_mix(opcodes):
    """The report's instruction counts from a Counter of full opcodes (see :func:`parse_sass`)."""
    def count(base, *modifiers):
        return sum(n for op, n in opcodes.items()
                   if op.split(".")[0] == base and all(m in op.split(".")[1:] for m in modifiers))

    return {
        "hmma": count("HMMA"),
        "hgmma": count("HGMMA"),
        "ldgsts": count("LDGSTS"),
        "ldgsts128": count("LDGSTS", "128"),  # 16-byte cp.async: a 16-byte global load straight into shared memory
        "lds128": count("LDS", "128"),
        "sts128": count("STS", "128"),
        "ldg128": count("LDG", "128"),
        "ffma": count("FFMA"),
        "dfma": count("DFMA"),
        "bar_sync": count("BAR", "SYNC"),
        "ldl": count("LDL"),
        "stl": count("STL"),
        "instructions": sum(n for op, n in opcodes.items() if op != "NOP"),
    }


# --- Names ----------------------------------------------------------------------------------------------------------
_BUILTIN = {"v": "void", "b": "bool", "c": "char", "a": "signed char", "h": "unsigned char", "s": "short",
            "t": "unsigned short", "i": "int", "j": "unsigned int", "l": "long", "m": "unsigned long",
            "x": "long long", "y": "unsigned long long", "f": "float", "d": "double", "DF16_": "_Float16"}


def _demangle_simple(mangled):
    """``_Z4gemmIfLi128ELi8EE...`` -> ``gemm<float, 128, 8>``: the template kernels of our modules (builtin types and
    integer/bool literals as arguments), without c++filt. Returns None for any other form."""
    match = re.match(r"_Z(\d+)", mangled)
    if not match:
        return None
    start = match.end()
    name = mangled[start:start + int(match.group(1))]
    rest = mangled[start + len(name):]
    if not rest.startswith("I"):
        return name if rest else None
    args, i = [], 1
    while i < len(rest) and rest[i] != "E":
        if rest[i] == "L":  # literal: L <type> [n] <digits> E
            lit = re.match(r"L([a-z])(n?)(\d+)E", rest[i:])
            if not lit or lit.group(1) not in _BUILTIN:
                return None
            value = int(lit.group(3)) * (-1 if lit.group(2) else 1)
            args.append(("true" if value else "false") if lit.group(1) == "b" else str(value))
            i += lit.end()
        else:
            code = next((c for c in _BUILTIN if rest.startswith(c, i)), None)
            if code is None:
                return None
            args.append(_BUILTIN[code])
            i += len(code)
    return f"{name}<{', '.join(args)}>" if i < len(rest) else None


def demangle(names):
    """Kernel names without return type and parameters: ``gemm<float, 128, 128, 16, 8, 8>``, the same spelling as
    ``KernelModule.instance``. Uses ``c++filt`` when present, else a small demangler for our template kernels;
    ``extern "C"`` names and anything not understood stay as they are."""
    names = list(names)
    plain = {}
    cxxfilt = shutil.which("c++filt")
    if cxxfilt and names:
        out = subprocess.run([cxxfilt], input="\n".join(names) + "\n", capture_output=True, text=True)
        lines = out.stdout.splitlines()
        if out.returncode == 0 and len(lines) == len(names):
            for name, line in zip(names, lines):
                plain[name] = _strip_signature(line) if line != name else name
    for name in names:
        if name not in plain:
            plain[name] = _demangle_simple(name) or name
    return plain


def _strip_signature(text):
    """``void gemm<float, 8>(float const*, int)`` -> ``gemm<float, 8>``."""
    depth, end = 0, len(text)
    for i, ch in enumerate(text):  # the parameter list is the first "(" outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            end = i
            break
    head = text[:end]
    if head.startswith("void "):
        head = head[len("void "):]
    return head.strip()


# --- The report -----------------------------------------------------------------------------------------------------
def _table_threads(module):
    """Threads per block from compile.py's launch tables: GEMM/conv tilings and pooling; None if unknown."""
    if module is None:
        return None
    if isinstance(getattr(module, "tile", None), kernels_compile.GemmTiling):
        return kernels_compile.GEMM_THREADS
    if module.name == "pool":
        return kernels_compile.POOL_THREADS
    return None


def analyze_cubin(cubin, arch, module="", threads=None, tools=None):
    """Rows of the report for every kernel of ``cubin`` (bytes) compiled for ``arch``.

    ``module`` is a ``KernelModule`` (its launch table gives the block size of kernels without ``__launch_bounds__``)
    or just a name; ``threads`` overrides the table for kernels without bounds (e.g. a test's planted kernel).
    """
    _check_arch(arch)
    tools = tools or find_tools()
    with tempfile.TemporaryDirectory(prefix="cuflow-report-") as tmp:
        path = os.path.join(tmp, f"{arch}.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        usage = parse_res_usage(_run(tools, ["-res-usage", path]))
        bounds, reserved_in_shared = parse_elf(_run(tools, ["-elf", path]))
        sass = parse_sass(_run(tools, ["-sass", path]))
    module_name = module if isinstance(module, str) else module.name
    default_threads = threads if threads is not None else _table_threads(None if isinstance(module, str) else module)
    names = demangle(usage)
    dynamic = {} if isinstance(module, str) else {
        module.instance(k, d): module.dynamic_shared(d) for k in module.kernels for d, _ in module.dtypes}
    rows = []
    for mangled, res in usage.items():
        if mangled in bounds:
            block, source = bounds[mangled], "launch_bounds"
        else:
            block, source = default_threads, ("compile.py" if threads is None else "given")
            if block is None:
                source = None
        shared = res.get("SHARED", 0)
        if reserved_in_shared and shared >= ARCH_LIMITS[arch].reserved_smem_per_block:
            shared -= ARCH_LIMITS[arch].reserved_smem_per_block  # static shared as ptxas -v and the driver count it
        opcodes = sass.get(mangled, collections.Counter())
        dynamic_shared = dynamic.get(names[mangled], 0)  # what the launcher passes (compile.py's table)
        row = {
            "module": module_name,
            "kernel": names[mangled],
            "mangled": mangled,
            "arch": arch,
            "registers": res.get("REG", 0),
            "shared_bytes": shared,
            "dynamic_shared_bytes": dynamic_shared,
            "spill_bytes": res.get("STACK", 0) + res.get("LOCAL", 0),
            "stack_bytes": res.get("STACK", 0),
            "local_bytes": res.get("LOCAL", 0),
            "threads": block,
            "threads_from": source,
            **occupancy(arch, res.get("REG", 0), block, shared + dynamic_shared),
            **instruction_mix(opcodes),
            "opcodes": dict(_mnemonics(opcodes)),
        }
        rows.append(row)
    return rows


def _check_arch(arch):
    if arch not in ARCH_LIMITS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(ARCH_LIMITS)}")


def _module_rows(module, arch):
    """A worker of report(jobs > 1): compile and read one module in a process of its own."""
    return analyze_cubin(kernels_compile.compile_module(module, arch), arch, module)


def report(archs=kernels_compile.ARCHS, modules=None, jobs=1):
    """One row (a dict, see the module docstring) per kernel instance of every module in ``modules`` (default:
    ``compile.MODULES``) for every arch in ``archs``, in that order (module, arch, then the cubin's order).

    ``jobs=1`` compiles in this process through ``compile.compile_module``, so the cubins land in (or come from) its
    per-process cache, one at a time (NVRTC serializes compiles inside a process), while worker threads run
    cuobjdump on the cubins already built. ``jobs > 1`` spreads modules over that many processes (faster on a
    cold cache: the command line's default), leaving this process's cache as it was.

    Raises ToolsMissing without cuobjdump/nvdisasm, ImportError without cuda-bindings, CompileError on a bad kernel.
    """
    tools = find_tools()
    modules = kernels_compile.MODULES if modules is None else tuple(modules)
    archs = (archs,) if isinstance(archs, str) else tuple(archs)
    for arch in archs:
        _check_arch(arch)
    tasks = [(module, arch) for module in modules for arch in archs]
    if jobs > 1 and len(tasks) > 1:
        import multiprocessing
        with concurrent.futures.ProcessPoolExecutor(
                max_workers=min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_module_rows, module, arch) for module, arch in tasks]
            return [row for future in futures for row in future.result()]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        futures = [pool.submit(analyze_cubin, kernels_compile.compile_module(module, arch), arch, module, None, tools)
                   for module, arch in tasks]
        return [row for future in futures for row in future.result()]


# --- Command line ---------------------------------------------------------------------------------------------------
COLUMNS = (  # (header, key, width)
    ("module", "module", 14), ("kernel", "kernel", 50), ("arch", "arch", 6), ("reg", "registers", 4),
    ("smem", "shared_bytes", 6), ("dsmem", "dynamic_shared_bytes", 6), ("spill", "spill_bytes", 5), ("thr", "threads", 4), ("blk/SM", "blocks_per_sm", 6),
    ("warp/SM", "warps_per_sm", 7), ("occ", "occupancy", 5), ("limit", "limited_by", 9), ("hmma", "hmma", 5),
    ("hgmma", "hgmma", 5), ("ldgsts", "ldgsts", 6), ("lds128", "lds128", 6), ("ldg128", "ldg128", 6),
    ("ffma", "ffma", 5), ("dfma", "dfma", 5), ("bar", "bar_sync", 4), ("ldl/stl", None, 7),
    ("instr", "instructions", 6),
)


def _cell(row, key):
    if key is None:
        return f"{row['ldl']}/{row['stl']}"
    value = row[key]
    if value is None:
        return "-"
    if key == "occupancy":
        return f"{value:.0%}"
    return str(value)


def format_table(rows):
    """The rows as a fixed-width text table, one line each, under a header."""
    def line(cells):
        return " ".join(f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, (_, _, w)) in enumerate(zip(cells, COLUMNS)))

    out = [line([h for h, _, _ in COLUMNS])]
    out += [line([_cell(row, key) for _, key, _ in COLUMNS]) for row in rows]
    return "\n".join(out)


def main(argv=None):
    """``python -m cuflow.kernels.report [--arch sm_80 sm_90] [--module NAME ...] [--json] [--jobs N]``."""
    parser = argparse.ArgumentParser(prog="python -m cuflow.kernels.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", default=list(kernels_compile.ARCHS), choices=sorted(ARCH_LIMITS),
                        help="architectures to compile for (default: %(default)s)")
    parser.add_argument("--module", nargs="+", choices=[m.name for m in kernels_compile.MODULES],
                        help="only these modules of compile.MODULES (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="compile in this many processes (default: the CPU count, %(default)s)")
    args = parser.parse_args(argv)
    modules = None if not args.module else [m for m in kernels_compile.MODULES if m.name in args.module]
    try:
        tools = find_tools()
        rows = report(args.arch, modules, jobs=args.jobs)
    except (ToolsMissing, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except kernels_compile.CompileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        json.dump({"tools": tool_versions(tools), "limits": {a: dataclasses.asdict(ARCH_LIMITS[a]) for a in args.arch},
                   "kernels": rows}, sys.stdout, indent=1)
        print()
    else:
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
