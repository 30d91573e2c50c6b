"""The quick-start job: train the seed's CNN on an offline dataset and print its test accuracy.

    python -m cuflow.demo [--epochs N] [--batch-size B] [--save PATH]

Data: scikit-learn's 8x8 handwritten digits (it ships with scikit-learn, so no network is needed). The model is the
seed's CNN, Conv2D(32, 3x3, relu) -> MaxPooling2D(2x2) -> Flatten -> Dense(10, softmax), written with
``cuflow.keras`` exactly as TensorFlow code would be, trained with ``fit`` (progress bar) on the best device
present. ``CUFLOW_DEMO_EPOCHS`` overrides the epoch count (CI runs the demo with 1).
"""
import argparse
import os
import time

import numpy as np

import cuflow as tf
from cuflow import keras


def load_digits(seed=0):
    """Digits as NHWC float32 in [0, 1] with int labels, split 80/20 with a fixed shuffle."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise SystemExit("the demo needs scikit-learn for its offline dataset: pip install 'cuflow[demo]'") from None
    data = sk_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(0.8 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def build_model(input_shape=(8, 8, 1), classes=10):
    """The seed's CNN (its 28x28 MNIST input shape becomes the digits' 8x8)."""
    return keras.Sequential([
        keras.layers.Conv2D(32, (3, 3), activation="relu", input_shape=input_shape),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(classes, activation="softmax"),
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=int(os.environ.get("CUFLOW_DEMO_EPOCHS", 20)))
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    (x_train, y_train), (x_test, y_test) = load_digits()
    device = tf.devices.current_device()
    print(f"cuflow {tf.__version__} on {device.short}: {len(x_train)} training and {len(x_test)} test digits (8x8)")
    tf.random.set_seed(0)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=1)
    seconds = time.perf_counter() - start
    _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy: {test_accuracy:.4f}  (device {device.short}, {seconds:.1f} s training, "
          f"{args.epochs} epochs)")
    return test_accuracy


if __name__ == "__main__":
    main()
