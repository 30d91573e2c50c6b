"""The ``cuflow`` command: ``cuflow info`` (versions and devices), ``cuflow demo`` (the quick-start job)."""
import argparse
import importlib.metadata
import platform
import sys


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def info():
    """Prints cuflow's, Python's and the libraries' versions, the devices, and each GPU's name and memory."""
    import numpy as np

    import cuflow
    from cuflow import devices
    from cuflow.kernels import cuda
    print(f"cuflow   {cuflow.__version__}")
    print(f"python   {platform.python_version()} ({sys.executable})")
    print(f"numpy    {np.__version__}")
    try:
        import cupy
        print(f"cupy     {cupy.__version__}")
    except ImportError:
        print("cupy     not installed (pip install 'cuflow[cuda13]' for an NVIDIA GPU)")
    optional = {"nvidia-ml-py": "GPU facts", "tqdm": "progress bars", "scikit-learn": "the offline digits",
                "matplotlib": "plot_history"}
    print("optional " + ", ".join(f"{name} {_version(name) or f'missing ({use})'}" for name, use in optional.items()))
    print("devices:")
    print("  /CPU:0")
    gpus = devices.list_devices("GPU")
    for dev in gpus:
        if cuda.is_mock():
            print(f"  {dev.short}  mock GPU (CUFLOW_MOCK_GPU): its kernels run on the CPU")
            continue
        try:
            facts = devices.gpu_info(dev.index)
        except ImportError:
            print(f"  {dev.short}  (install nvidia-ml-py for its name and memory)")
            continue
        except Exception as error:  # pynvml.NVMLError and friends: report, don't fail the whole command
            print(f"  {dev.short}  (NVML could not describe it: {type(error).__name__}: {error})")
            continue
        print(f"  {dev.short}  {facts['name']}, {facts['memory_used'] / 2**30:.1f} / "
              f"{facts['memory_total'] / 2**30:.1f} GiB used, {facts['utilization_gpu']}% busy, "
              f"driver {facts['driver']}")
    if not gpus:
        print(f"  no GPU: {cuda.unavailable_reason()}")
    print(f"default device: {devices.default_device().short}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="cuflow", description="cuflow command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, devices, GPU name and memory")
    demo = sub.add_parser("demo", help="train the quick-start CNN on the offline digits dataset")
    demo.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "info":
        info()
    elif args.command == "demo":
        from cuflow import demo as demo_module
        demo_module.main(args.rest)


if __name__ == "__main__":
    main()
