"""The Keras 3 half of test_keras_interop.py, run in its own process (KERAS_BACKEND=torch).

Usage: python keras_side.py WORKDIR. WORKDIR holds x_{mlp,cnn,fun}.npy and the files cuflow wrote
(cuflow_{mlp,cnn,fun}.keras/.h5/.weights.h5). This script writes Keras's predictions for them (*.keras_pred.npy),
then its own models (keras_{mlp,cnn,fun}.keras/.h5/.weights.h5) with their predictions (keras_*.pred.npy).
Exit code 77: no usable Keras 3.
"""
import os
import sys

os.environ["KERAS_BACKEND"] = "torch"
try:
    import keras
except ImportError:
    sys.exit(77)
if int(keras.__version__.split(".")[0]) < 3:
    sys.exit(77)
import numpy as np

layers = keras.layers


def build(kind):
    if kind == "fun":  # functional: two branches joined
        inputs = keras.Input((6,), name="features")
        hidden = layers.Dense(8, activation="relu")(inputs)
        joined = layers.Concatenate()([layers.Dense(4)(hidden), layers.Dense(4, activation="tanh")(hidden)])
        return keras.Model(inputs, layers.Dense(3, activation="softmax")(joined))
    if kind == "mlp":
        return keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu", kernel_regularizer="l2"),
                                 layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
    return keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
                             layers.Dropout(0.5), layers.Conv2D(2, (2, 2), padding="same"),
                             layers.AveragePooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])


def main(work):
    keras.utils.set_random_seed(0)
    for kind in ("mlp", "cnn", "fun"):
        x = np.load(os.path.join(work, f"x_{kind}.npy"))
        for suffix in (".keras", ".h5"):
            name = os.path.join(work, f"cuflow_{kind}{suffix}")
            model = keras.models.load_model(name)
            np.save(name + ".keras_pred.npy", model.predict(x, verbose=0))
            if suffix == ".keras":
                np.save(name + ".iterations.npy", np.asarray(model.optimizer.iterations.numpy()))
                fresh = build(kind)
                fresh.load_weights(os.path.join(work, f"cuflow_{kind}.weights.h5"))
                np.save(os.path.join(work, f"cuflow_{kind}.weights.h5.keras_pred.npy"), fresh.predict(x, verbose=0))
        model = build(kind)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, np.arange(len(x)) % 3, epochs=1, batch_size=4, verbose=0)
        for suffix in (".keras", ".h5", ".weights.h5"):
            name = os.path.join(work, f"keras_{kind}{suffix}")
            model.save_weights(name) if suffix == ".weights.h5" else model.save(name)
        np.save(os.path.join(work, f"keras_{kind}.pred.npy"), model.predict(x, verbose=0))


if __name__ == "__main__":
    main(sys.argv[1])
