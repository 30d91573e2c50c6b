"""Checks the layer tests share: a short fit lowers the loss, and the same numbers on the CPU and the active device."""
import numpy as np

import cuflow as tf
from cuflow import keras


def fit_lowers_loss(model, x, y, loss="mse", epochs=6):
    """A few epochs of ``fit`` with Adam: the last epoch's loss is below the first's."""
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    losses = model.fit(x, y, epochs=epochs, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < losses[0], losses
    return model


def output_and_gradients(layer, inputs, training=None):
    """``layer(inputs)`` and the gradients of ``sum(output ** 2)`` w.r.t. the layer's trainable weights, as arrays."""
    with tf.GradientTape() as tape:
        out = layer(inputs, training=training)
        loss = tf.reduce_sum(out * out)
    return [np.asarray(out)] + [np.asarray(g) for g in tape.gradient(loss, layer.trainable_weights)]


def same_as_on_cpu(run, rtol=1e-4, atol=1e-5):
    """Calls ``run()`` (a list of arrays) on the CPU and on the active device (the ``device`` fixture's) and
    compares the results."""
    with tf.device("/CPU:0"):
        expected = run()
    got = run()
    assert len(got) == len(expected)
    for g, want in zip(got, expected):
        np.testing.assert_allclose(g, want, rtol=rtol, atol=atol)
