"""The quick-start job: train a small CNN on an offline dataset and print its test accuracy.

    python -m cuflow.demo [--epochs N] [--batch-size B]

Data: scikit-learn's 8x8 handwritten digits (ships with scikit-learn, no network). The model is the seed's CNN
shape, Conv2D(3x3, relu) -> MaxPool(2) -> Flatten -> Dense(10), written with cuflow ops, a GradientTape and Adam
(until the Keras layers land, this is what a custom training loop looks like). It runs on the best device present.
"""
import argparse
import time

import numpy as np

import cuflow as tf


def load_digits(seed=0):
    """Digits as NHWC float32 in [0, 1], split 80/20 with a fixed shuffle."""
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


class SmallCNN:
    """Conv2D(filters, 3x3, same, relu) -> MaxPool(2x2) -> Flatten -> Dense(10) on 8x8x1 images."""

    def __init__(self, filters=32, classes=10):
        tf.random.set_seed(0)
        fan_in = 3 * 3 * 1
        self.kernel = tf.Variable(tf.random.normal((3, 3, 1, filters), stddev=np.sqrt(2.0 / fan_in)), name="conv")
        self.conv_bias = tf.Variable(tf.zeros((filters,)), name="conv_bias")
        flat = 4 * 4 * filters
        limit = np.sqrt(6.0 / (flat + classes))
        self.dense = tf.Variable(tf.random.uniform((flat, classes), -limit, limit), name="dense")
        self.dense_bias = tf.Variable(tf.zeros((classes,)), name="dense_bias")
        self.variables = [self.kernel, self.conv_bias, self.dense, self.dense_bias]

    def __call__(self, images):
        h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(images, self.kernel, strides=1, padding="SAME"), self.conv_bias))
        h = tf.nn.max_pool2d(h, ksize=2, strides=2, padding="VALID")
        h = tf.reshape(h, (h.shape[0], -1))
        return tf.matmul(h, self.dense) + self.dense_bias


class Adam:
    """Adam on a list of Variables (the Keras optimizers come with the Keras issue)."""

    def __init__(self, variables, learning_rate=0.005, beta1=0.9, beta2=0.999, epsilon=1e-7):
        self.lr, self.b1, self.b2, self.eps, self.t = learning_rate, beta1, beta2, epsilon, 0
        self.m = [tf.zeros_like(v) for v in variables]
        self.v = [tf.zeros_like(v) for v in variables]

    def apply(self, grads, variables):
        self.t += 1
        scale = self.lr * np.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        for i, (g, var) in enumerate(zip(grads, variables)):
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            var.assign_sub(scale * self.m[i] / (tf.sqrt(self.v[i]) + self.eps))


def _progress(total, desc):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="step", leave=True)


def accuracy(model, x, y, batch_size=256):
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = model(tf.constant(x[i:i + batch_size]))
        correct += int(np.sum(np.asarray(tf.argmax(logits, axis=1)) == y[i:i + batch_size]))
    return correct / len(x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    (x_train, y_train), (x_test, y_test) = load_digits()
    device = tf.devices.current_device()
    print(f"cuflow {tf.__version__} on {device.short}: {len(x_train)} training and {len(x_test)} test digits (8x8)")
    model = SmallCNN()
    optimizer = Adam(model.variables)
    rng = np.random.default_rng(0)
    steps = (len(x_train) + args.batch_size - 1) // args.batch_size
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(len(x_train))
        bar = _progress(steps, f"epoch {epoch + 1}/{args.epochs}")
        total = 0.0
        for step in range(steps):
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            images, labels = tf.constant(x_train[idx]), tf.constant(y_train[idx])
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, model(images)))
            optimizer.apply(tape.gradient(loss, model.variables), model.variables)
            total += float(loss)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total / (step + 1):.4f}")
        if bar is not None:
            bar.close()
        else:
            print(f"epoch {epoch + 1}/{args.epochs}: loss {total / steps:.4f}")
    seconds = time.perf_counter() - start
    test_accuracy = accuracy(model, x_test, y_test)
    print(f"test accuracy: {test_accuracy:.4f}  (device {device.short}, {seconds:.1f} s training)")
    return test_accuracy


if __name__ == "__main__":
    main()
