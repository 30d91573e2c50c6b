"""Training-step time on the CPU: cuflow's Keras loop against the same model trained by PyTorch CPU.

Two models, both with Adam, batch 128 and sparse categorical cross-entropy on 10 classes:
  cnn  the seed's CNN: Conv2D(32, 3x3, relu, input 28x28x1) -> MaxPooling2D(2) -> Flatten -> Dense(10, softmax)
  mlp  Dense(128, relu, input 784) -> Dense(10, softmax)
cuflow is timed through ``model.train_on_batch`` and through ``fit`` (one epoch of 8 steps, per step); PyTorch
through the equivalent nn.Module, ``torch.optim.Adam`` and a hand-written step / epoch loop (the model ends in
logits and ``F.cross_entropy``, which is what a PyTorch user writes for softmax + cross-entropy).

Ratios are cuflow time / PyTorch time: LOWER IS BETTER; the target on the CPU is <= 1.0.
On a machine shared with other jobs, multi-threaded BLAS and PyTorch spin-wait for descheduled threads and wall
times swing by 10x: there, compare with ``--threads 1 --clock cpu`` (the process's CPU time, one thread each).
Run from the repository root:  python3 benchmarks/training.py [--repeats 7] [--threads 1 --clock cpu] [--json x.json]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script: the repository's cuflow and benchmarks, installed or not

from benchmarks.common import refuse_mock_gpu, report  # noqa: E402
import cuflow as tf  # noqa: E402
from cuflow import keras  # noqa: E402

BATCH = 128
STEPS_PER_EPOCH = 8
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def median_ms(fn, repeats, number=1, warmup=2):
    """Median over ``repeats`` runs of the time of one call of ``fn`` (averaged over ``number`` calls), in ms."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        start = clock()
        for _ in range(number):
            fn()
        runs.append((clock() - start) / number)
    return 1e3 * float(np.median(runs))


def data(kind, n, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, 28, 28, 1) if kind == "cnn" else (n, 784)
    return rng.random(shape, dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


# --- cuflow ---------------------------------------------------------------------------------------------------------
def cuflow_model(kind):
    if kind == "cnn":
        layers = [keras.layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                  keras.layers.MaxPooling2D((2, 2)), keras.layers.Flatten(),
                  keras.layers.Dense(10, activation="softmax")]
    else:
        layers = [keras.layers.Dense(128, activation="relu", input_shape=(784,)),
                  keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    return model


def time_cuflow(kind, repeats):
    with tf.device("/CPU:0"):
        model = cuflow_model(kind)
        x, y = data(kind, BATCH * STEPS_PER_EPOCH)
        xb, yb = x[:BATCH], y[:BATCH]
        step = median_ms(lambda: model.train_on_batch(xb, yb), repeats, number=3)
        epoch = median_ms(lambda: model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0), repeats)
    return step, epoch / STEPS_PER_EPOCH


# --- PyTorch --------------------------------------------------------------------------------------------------------
def torch_model(torch, kind):
    nn = torch.nn
    if kind == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 13 * 13, 10))
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def time_torch(torch, kind, repeats):
    torch.manual_seed(0)
    model = torch_model(torch, kind)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)  # Keras's epsilon
    x, y = data(kind, BATCH * STEPS_PER_EPOCH)
    if kind == "cnn":
        x = x.transpose(0, 3, 1, 2)  # NCHW, PyTorch's default layout
    x, y = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)

    def train_step(xb, yb):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    def epoch():
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(STEPS_PER_EPOCH):
            idx = order[i * BATCH:(i + 1) * BATCH]
            total += train_step(x[idx], y[idx]).item()  # Keras reads the epoch's loss: so does this loop
        return total

    xb, yb = x[:BATCH], y[:BATCH]
    step = median_ms(lambda: train_step(xb, yb).item(), repeats, number=3)  # train_on_batch returns a float
    return step, median_ms(epoch, repeats) / STEPS_PER_EPOCH


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", default="cnn,mlp", help="comma-separated: cnn, mlp")
    parser.add_argument("--threads", type=int, help="limit NumPy's BLAS (via threadpoolctl) and PyTorch to N threads")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="'cpu' times the process's CPU time: with --threads 1 it measures the work done even on "
                             "a machine busy with other jobs (wall time there measures the scheduler)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    refuse_mock_gpu()
    try:
        import torch
    except ImportError:
        torch = None
        print("(PyTorch not installed: pip install torch==2.13.0 for the PyTorch reference)")
    if args.threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
        if torch:
            torch.set_num_threads(args.threads)
    threads = f", torch {torch.__version__} with {torch.get_num_threads()} threads" if torch else ""
    print(f"CPU training step, batch {BATCH}, Adam, {args.clock} time: {os.cpu_count()} CPUs{threads}")
    rows, results = [], []
    for kind in args.models.split(","):
        ours_step, ours_fit = time_cuflow(kind, args.repeats)
        ref_step, ref_fit = time_torch(torch, kind, args.repeats) if torch else (float("nan"), float("nan"))
        rows += [(f"{kind}: train_on_batch", ours_step, "torch", ref_step, "ms"),
                 (f"{kind}: fit, per step ({STEPS_PER_EPOCH} steps/epoch)", ours_fit, "torch", ref_fit, "ms")]
        results += [{"model": kind, "what": what, "cuflow_ms": ours, "torch_ms": ref, "ratio": ours / ref}
                    for what, ours, ref in (("train_on_batch", ours_step, ref_step), ("fit_step", ours_fit, ref_fit))]
    report(rows)
    print("ratio = cuflow / torch, lower is better; target <= 1.0 on the CPU")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "batch": BATCH, "clock": args.clock,
                       "threads": args.threads, "torch": torch.__version__ if torch else None, "rows": results},
                      fh, indent=1)


if __name__ == "__main__":
    main()
