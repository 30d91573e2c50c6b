"""cuflow: a GPU-first deep-learning framework with TensorFlow's and Keras's names (NumPy on CPU, CuPy on GPU)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# NVRTC from PyPI lets CI compile every CUDA kernel to cubin for sm_80/sm_90 without a GPU; cuobjdump and nvdisasm
# read the cubins for the kernel report (registers, spills, SASS instruction mix).
NVRTC = ["cuda-bindings>=13.0", "nvidia-cuda-nvrtc>=13.0", "nvidia-cuda-runtime>=13.0", "nvidia-cuda-nvdisasm>=13.0",
         "nvidia-cuda-cuobjdump>=13.0"]

EXTRAS = {
    "cuda12": ["cupy-cuda12x>=13.0", "nvidia-ml-py>=12.0"],
    "cuda13": ["cupy-cuda13x>=14.0", "nvidia-ml-py>=12.0"],
    "bfloat16": ["ml_dtypes>=0.4"],
    "demo": ["tqdm>=4.60", "scikit-learn>=1.3"],
    "kernels": NVRTC,
    "tensorboard": ["tensorboard>=2.14"],
    "plot": ["matplotlib>=3.5"],
    "saving": ["h5py>=3.8"],
}
# running the notebooks in Jupyter (tqdm's notebook bar needs ipywidgets); CI executes them with nbclient
EXTRAS["notebooks"] = sorted({*EXTRAS["demo"], *EXTRAS["plot"], "ipykernel>=6.0", "ipywidgets>=8.0"})
EXTRAS["test"] = sorted({"pytest>=8.0", "pytest-xdist>=3.5", *EXTRAS["bfloat16"], *EXTRAS["demo"],
                         *EXTRAS["tensorboard"], *EXTRAS["plot"], *EXTRAS["saving"], "nbclient>=0.8",
                         "nbformat>=5.7", "ipykernel>=6.0", *NVRTC})
EXTRAS["all"] = sorted({dep for name, deps in EXTRAS.items() if name not in ("cuda12",) for dep in deps})

setup(
    name="cuflow",
    version="0.1.0",
    description=__doc__,
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["cuflow", "cuflow.*"]),
    package_data={"cuflow.kernels": ["*.cu", "*.cuh"], "cuflow.kernels.emu": ["*.h"]},
    install_requires=["numpy>=1.24"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["cuflow=cuflow.__main__:main"]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
