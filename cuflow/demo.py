"""The quick-start job: train the seed's CNN, print its test accuracy, device and time, and save it.

    python -m cuflow.demo [--epochs N] [--batch-size B] [--download] [--save PATH | --no-save]

Data: MNIST when it is already in the cache (``$CUFLOW_HOME/datasets``, see docs/datasets.md), else
scikit-learn's 8x8 handwritten digits, which ship with scikit-learn, so no network is needed. ``--download``
fetches MNIST first (11 MB). The model is the seed's CNN, Conv2D(32, 3x3, relu) -> MaxPooling2D(2x2) -> Flatten ->
Dense(10, softmax), written with ``cuflow.keras`` exactly as TensorFlow code would be, trained with ``fit``
(progress bar) on the best device present. ``CUFLOW_DEMO_EPOCHS`` overrides the epoch count (CI runs the demo
with a few).
"""
import argparse
import os
import time

import numpy as np

import cuflow as tf
from cuflow import keras

DEFAULT_EPOCHS = {"mnist": 1, "digits": 20}  # one MNIST epoch already reaches ~98%


def load_data(download=False):
    """``(name, (x_train, y_train), (x_test, y_test))``: NHWC float32 images in [0, 1] and int32 labels, from
    MNIST when it is cached (or ``download``), else from the offline digits."""
    if download or keras.datasets.mnist.is_cached():
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        name, scale = "mnist", 255.0
    else:
        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
        except ImportError:
            raise SystemExit("the demo's offline dataset needs scikit-learn: pip install 'cuflow[demo]' "
                             "(or run with --download to train on MNIST)") from None
        name, scale = "digits", 16.0
    prepare = lambda x: (x.astype(np.float32) / scale)[..., None]  # noqa: E731 - channels last, as Keras
    return name, (prepare(x_train), y_train.astype(np.int32)), (prepare(x_test), y_test.astype(np.int32))


def build_model(input_shape=(28, 28, 1), classes=10):
    """The seed's CNN (on the 8x8 digits its 28x28 input shape becomes 8x8)."""
    return keras.Sequential([
        keras.layers.Conv2D(32, (3, 3), activation="relu", input_shape=input_shape),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(classes, activation="softmax"),
    ])


def default_save_path():
    return str(keras.datasets.cuflow_home() / "demo" / "seed_cnn.keras")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs to train (default: $CUFLOW_DEMO_EPOCHS, else {DEFAULT_EPOCHS})")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--download", action="store_true", help="download MNIST (11 MB) if it is not cached")
    parser.add_argument("--save", default=default_save_path(), help="where to save the trained model (.keras)")
    parser.add_argument("--no-save", action="store_true", help="don't save the trained model")
    args = parser.parse_args(argv)
    name, (x_train, y_train), (x_test, y_test) = load_data(args.download)
    epochs = args.epochs or int(os.environ.get("CUFLOW_DEMO_EPOCHS") or DEFAULT_EPOCHS[name])
    device = tf.devices.current_device()
    size = "x".join(map(str, x_train.shape[1:3]))
    print(f"cuflow {tf.__version__} on {device.short}: {name}, {len(x_train)} training and {len(x_test)} test "
          f"images ({size})")
    tf.random.set_seed(0)
    model = build_model(x_train.shape[1:])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, verbose=1)
    seconds = time.perf_counter() - start
    _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy: {test_accuracy:.4f}  (device {device.short}, {seconds:.1f} s training, {epochs} epochs "
          f"on {name})")
    if not args.no_save:
        os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
        model.save(args.save)
        print(f"model saved to {args.save}  (load it with keras.models.load_model)")
    return test_accuracy


if __name__ == "__main__":
    main()
