"""keras.callbacks in real ``fit`` runs on tiny data: each callback's effect on training, the files it writes, and
its bad-input errors."""
import csv
import math
import os

import numpy as np
import pytest

import cuflow as tf
from cuflow import keras

callbacks = keras.callbacks


def dense_model(lr=0.1, optimizer="sgd", metrics=None):
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(3,))])
    opt = keras.optimizers.SGD(learning_rate=lr) if optimizer == "sgd" else optimizer
    model.compile(optimizer=opt, loss="mse", metrics=metrics)
    return model


@pytest.fixture
def data(rng):
    x = rng.standard_normal((32, 3)).astype(np.float32)
    return x, x @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3


class Score(callbacks.Callback):
    """Puts a scripted value into the epoch logs (before the callbacks that follow it read them) and records the
    weights at the end of each epoch."""

    def __init__(self, values, name="score"):
        super().__init__()
        self.values, self.name, self.weights = values, name, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.name] = self.values[epoch]
        self.weights.append(self.model.get_weights())


def logged(key):
    """A callback recording ``logs[key]`` at each epoch end (put it after the callback that writes the key)."""
    seen = []
    return seen, callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs[key]))


# --- EarlyStopping ------------------------------------------------------------------------------------------------
def test_early_stopping_stops_after_patience_and_restores_the_best_weights(device, data):
    tf.random.set_seed(0)
    model = dense_model()
    score = Score([5.0, 3.0, 4.0, 2.5, 2.6, 2.7, 2.8, 1.0, 1.0, 1.0])
    stop = callbacks.EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=True)
    history = model.fit(*data, epochs=10, batch_size=8, verbose=0, callbacks=[score, stop])
    # best at epoch 3 (2.5); epochs 4 and 5 do not improve: patience 2 is used up at epoch 5
    assert history.epoch == [0, 1, 2, 3, 4, 5] and stop.stopped_epoch == 5 and stop.best_epoch == 3
    for restored, best in zip(model.get_weights(), score.weights[3]):
        np.testing.assert_array_equal(restored, best)
    assert not np.array_equal(score.weights[3][0], score.weights[5][0])  # training did move the weights


def test_early_stopping_on_val_loss_in_auto_mode_with_min_delta(data):
    model = dense_model()
    stop = callbacks.EarlyStopping(min_delta=1e6, patience=1)  # monitor='val_loss', nothing counts as better
    history = model.fit(*data, epochs=10, validation_split=0.25, verbose=0, callbacks=[stop])
    assert len(history.history["val_loss"]) == 2 and stop.stopped_epoch == 1
    assert history.history["val_loss"][1] < history.history["val_loss"][0]  # it improved, by less than min_delta


def test_early_stopping_baseline_and_start_from_epoch(data):
    model = dense_model(lr=0.0)  # the loss never changes
    stop = callbacks.EarlyStopping(monitor="loss", baseline=0.0, patience=2)
    assert len(model.fit(*data, epochs=10, verbose=0, callbacks=[stop]).epoch) == 2  # never beats the baseline
    stop = callbacks.EarlyStopping(monitor="loss", patience=1, start_from_epoch=3)
    assert len(model.fit(*data, epochs=10, verbose=0, callbacks=[stop]).epoch) == 5  # epochs 0-2 are warm-up


def test_early_stopping_accuracy_goes_up_in_auto_mode(data):
    x, y = data
    model = dense_model(lr=0.0, metrics=["accuracy"])
    score = Score([0.5, 0.6, 0.55, 0.58, 0.7], name="val_accuracy")
    stop = callbacks.EarlyStopping(monitor="val_accuracy", patience=2)
    model.fit(x, (y > 0).astype(np.float32), epochs=5, verbose=0, callbacks=[score, stop])
    assert stop.best == 0.6 and stop.stopped_epoch == 3


def test_early_stopping_bad_monitor_and_mode(data):
    model = dense_model()
    with pytest.raises(ValueError, match="monitor=val_foo.*mode='max'"):
        model.fit(*data, epochs=2, verbose=0, callbacks=[Score([1.0, 1.0], "val_foo"),
                                                         callbacks.EarlyStopping(monitor="val_foo")])
    with pytest.warns(UserWarning, match="not available. Available metrics are: loss"):
        history = model.fit(*data, epochs=2, verbose=0, callbacks=[callbacks.EarlyStopping(monitor="val_loss")])
    assert len(history.epoch) == 2
    with pytest.warns(UserWarning, match="mode 'largest' is unknown"):
        assert callbacks.EarlyStopping(mode="largest").mode == "auto"


# --- ModelCheckpoint ----------------------------------------------------------------------------------------------
class FileSaving(keras.Sequential):
    """A model whose save/save_weights write the weights with np.savez, to test the callback apart from saving."""

    def save_weights(self, filepath, overwrite=True):
        with open(filepath, "wb") as f:
            np.savez(f, *self.get_weights())

    save = save_weights


def loaded(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def file_saving_model():
    model = FileSaving([keras.layers.Dense(1, input_shape=(3,))])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_model_checkpoint_formats_the_path_with_epoch_and_logs(tmp_path, data):
    model = file_saving_model()
    pattern = str(tmp_path / "ckpt" / "w-{epoch:02d}-{val_loss:.2f}.weights.h5")
    history = model.fit(*data, epochs=3, validation_split=0.25, verbose=0,
                        callbacks=[callbacks.ModelCheckpoint(pattern, save_weights_only=True)])
    expected = [f"w-{e + 1:02d}-{v:.2f}.weights.h5" for e, v in enumerate(history.history["val_loss"])]
    assert sorted(os.listdir(tmp_path / "ckpt")) == sorted(expected)
    for saved, current in zip(loaded(tmp_path / "ckpt" / expected[-1]), model.get_weights()):
        np.testing.assert_array_equal(saved, current)


def test_model_checkpoint_save_best_only_keeps_the_best_epoch(tmp_path, data):
    model = file_saving_model()
    score = Score([3.0, 1.0, 2.0, 0.5, 0.7])
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}.keras"), monitor="score", mode="min",
                                           save_best_only=True)
    model.fit(*data, epochs=5, verbose=0, callbacks=[score, checkpoint])
    assert sorted(os.listdir(tmp_path)) == ["m-1.keras", "m-2.keras", "m-4.keras"]
    for saved, best in zip(loaded(tmp_path / "m-4.keras"), score.weights[3]):
        np.testing.assert_array_equal(saved, best)
    assert checkpoint.best == 0.5


def test_model_checkpoint_every_n_batches(tmp_path, data):
    model = file_saving_model()
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}-{loss:.3f}.keras"), save_freq=3)
    model.fit(*data, epochs=2, batch_size=8, verbose=0, callbacks=[checkpoint])  # 4 batches per epoch
    names = sorted(os.listdir(tmp_path))
    assert [n.split("-")[:2] for n in names] == [["e1", "b3"], ["e2", "b2"]], names
    assert all(math.isfinite(float(n.split("-")[2][:-len(".keras")])) for n in names)


def test_model_checkpoint_bad_arguments(tmp_path, data):
    with pytest.raises(ValueError, match="must end in `.weights.h5`.*filepath=w.h5"):
        callbacks.ModelCheckpoint("w.h5", save_weights_only=True)
    with pytest.raises(ValueError, match="must end in `.keras`.*filepath=model.pt"):
        callbacks.ModelCheckpoint("model.pt")
    with pytest.raises(ValueError, match="Unrecognized save_freq: weekly"):
        callbacks.ModelCheckpoint("m.keras", save_freq="weekly")
    model = file_saving_model()
    with pytest.raises(KeyError, match="Failed to format this callback filepath.*val_auc"):
        model.fit(*data, epochs=1, verbose=0,
                  callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "{val_auc}.keras"))])


def test_model_checkpoint_with_the_real_saving(tmp_path, data):
    model = dense_model()
    weights_path, model_path = str(tmp_path / "best.weights.h5"), str(tmp_path / "last.keras")
    model.fit(*data, epochs=2, verbose=0,
              callbacks=[callbacks.ModelCheckpoint(weights_path, monitor="loss", save_weights_only=True,
                                                   save_best_only=True),
                         callbacks.ModelCheckpoint(model_path, monitor="loss")])
    fresh = dense_model()
    fresh.load_weights(weights_path)
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the loss went down each epoch, so the best is the last
    restored = keras.models.load_model(model_path)
    np.testing.assert_allclose(restored.predict(data[0], verbose=0), model.predict(data[0], verbose=0))


# --- learning rate ------------------------------------------------------------------------------------------------
def test_reduce_lr_on_plateau_after_patience_with_cooldown_and_min_lr(data):
    model = dense_model(lr=0.1)
    plateau = callbacks.ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    seen, record = logged("learning_rate")
    model.fit(*data, epochs=9, verbose=0, callbacks=[Score([1.0] * 9), plateau, record])
    # logged: the rate each epoch ran with. End of epoch 2: two epochs without improvement -> 0.05 and one
    # cooldown epoch (3, which counts again once its cooldown is over, as in Keras); epoch 4 -> 0.025; epoch 6 ->
    # 0.0125, raised to min_lr
    np.testing.assert_allclose(seen, [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02], rtol=1e-6)
    assert model.optimizer.learning_rate == pytest.approx(0.02)


def test_reduce_lr_on_plateau_on_a_real_val_loss_changes_the_step_size(data):
    model = dense_model(lr=0.05)
    plateau = callbacks.ReduceLROnPlateau(factor=0.1, patience=1, min_delta=1e6)  # val_loss, never "improving"
    model.fit(*data, epochs=2, validation_split=0.25, verbose=0, callbacks=[plateau])
    assert model.optimizer.learning_rate == pytest.approx(0.005)
    before = model.get_weights()[0].copy()
    model.train_on_batch(*data)
    step_small = np.abs(model.get_weights()[0] - before).max()
    model.optimizer.learning_rate = 0.05
    before = model.get_weights()[0].copy()
    model.train_on_batch(*data)
    assert np.abs(model.get_weights()[0] - before).max() > 5 * step_small


def test_reduce_lr_on_plateau_bad_input(data):
    with pytest.raises(ValueError, match="factor >= 1.0. Received factor=1.5"):
        callbacks.ReduceLROnPlateau(factor=1.5)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    model = dense_model(optimizer=keras.optimizers.SGD(learning_rate=schedule))
    with pytest.raises(TypeError, match="LearningRateSchedule.*not settable"):
        model.fit(*data, epochs=2, verbose=0,
                  callbacks=[callbacks.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=1e6)])


def test_learning_rate_scheduler_sets_the_rate_each_epoch(data):
    model = dense_model(lr=0.1)
    rates, record = logged("learning_rate")
    weights = []
    keep = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights.append(model.get_weights()[0].copy()))
    scheduler = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch < 2 else 0.0)
    model.fit(*data, epochs=4, verbose=0, callbacks=[scheduler, record, keep])
    assert rates == [0.05, 0.025, 0.0, 0.0]
    assert not np.array_equal(weights[0], weights[1])
    np.testing.assert_array_equal(weights[1], weights[2])  # a learning rate of 0 leaves the weights alone
    old_style = callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))  # schedule(epoch) works too
    model.fit(*data, epochs=2, verbose=0, callbacks=[old_style])
    assert model.optimizer.learning_rate == pytest.approx(0.02)


def test_learning_rate_scheduler_bad_schedule(data):
    with pytest.raises(TypeError, match="schedule must be a function.*0.1"):
        callbacks.LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match="should be a float. Got: 1"):
        dense_model().fit(*data, epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: 1)])


# --- CSVLogger, TerminateOnNaN, LambdaCallback ------------------------------------------------------------------
def read_csv(path, separator=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=separator))


def test_csv_logger_writes_a_header_and_one_row_per_epoch(tmp_path, data):
    x, y = data
    model = dense_model(metrics=["mse"])
    path = tmp_path / "log.csv"
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "loss", "mse", "val_loss", "val_mse"] and len(rows) == 4
    for epoch, row in enumerate(rows[1:]):
        assert int(row[0]) == epoch
        for name, value in zip(rows[0][1:], row[1:]):
            assert float(value) == history.history[name][epoch]
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path, separator=";", append=True)])
    appended = read_csv(path, ";")[4:]
    assert [r[0] for r in appended] == ["0", "1"] and len(appended[0]) == 3  # no second header
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    assert len(read_csv(path)) == 2  # append=False starts the file over


def test_terminate_on_nan_stops_training(device, data):
    x, y = data
    x = x.copy()
    x[13] = np.nan  # the second batch of 8 has a NaN loss
    history = dense_model().fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0,
                                callbacks=[callbacks.TerminateOnNaN()])
    assert history.epoch == [0] and math.isnan(history.history["loss"][0])
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 1"):
        dense_model().fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0,
                          callbacks=[callbacks.TerminateOnNaN(raise_error=True)])


def test_terminate_on_nan_stops_in_the_middle_of_the_epoch(data):
    x, y = data
    x = x.copy()
    x[13] = np.nan  # batch 1 of 4
    batches = []
    model = dense_model()
    after = callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, callbacks=[callbacks.TerminateOnNaN(), after])
    assert batches == [0, 1]  # the callbacks after it still see the batch that stopped training; no batch follows
    assert int(model.optimizer.iterations.numpy()) == 2


def test_learning_rate_logged_by_callbacks_reaches_the_history(data):
    scheduler = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    history = dense_model().fit(*data, epochs=3, verbose=0, callbacks=[scheduler])
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.1 / 3], rtol=1e-6)
    plateau = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1e6)
    history = dense_model(lr=0.2).fit(*data, epochs=3, verbose=0, callbacks=[plateau])
    # the rate each epoch ran with, logged before that epoch's reduction (as Keras): halved after epochs 1 and 2
    np.testing.assert_allclose(history.history["learning_rate"], [0.2, 0.2, 0.1], rtol=1e-6)


def test_a_history_or_progress_bar_passed_in_replaces_fits_own(data, capsys):
    mine = callbacks.History()
    model = dense_model()
    returned = model.fit(*data, epochs=2, verbose=2, callbacks=[mine, callbacks.ProgbarLogger(verbose=2)])
    assert returned is mine and model.history is mine and mine.epoch == [0, 1] and len(mine.history["loss"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"]  # one bar, not two


class Events(callbacks.Callback):
    """Records the hooks fit calls, with the batch index or the sorted log names."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(("epoch_end", epoch, sorted(logs)))

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(("train_batch", batch))

    def on_test_begin(self, logs=None):
        self.seen.append(("test_begin",))

    def on_test_batch_begin(self, batch, logs=None):
        self.seen.append(("test_batch_begin", batch))

    def on_test_batch_end(self, batch, logs=None):
        self.seen.append(("test_batch_end", batch, float(logs["loss"])))

    def on_test_end(self, logs=None):
        self.seen.append(("test_end", dict(logs)))


def test_fit_validates_through_the_callbacks_test_hooks(data):
    x, y = data
    events = Events()
    model = dense_model(metrics=["mse"])
    history = model.fit(x[:16], y[:16], epochs=2, batch_size=8, validation_data=(x[16:], y[16:]),
                        validation_batch_size=10, validation_freq=2, verbose=0, callbacks=[events])
    kinds = [event[0] for event in events.seen]
    assert kinds == ["train_batch", "train_batch", "epoch_end",  # epoch 0: no validation (validation_freq=2)
                     "train_batch", "train_batch", "test_begin", "test_batch_begin", "test_batch_end",
                     "test_batch_begin", "test_batch_end", "test_end", "epoch_end"]
    assert [event[1] for event in events.seen if event[0] == "test_batch_begin"] == [0, 1]  # 16 samples, 10 a batch
    test_logs = events.seen[-2][1]
    assert sorted(test_logs) == ["loss", "mse"]
    assert test_logs["loss"] == history.history["val_loss"][0] and test_logs["mse"] == history.history["val_mse"][0]
    assert events.seen[-1] == ("epoch_end", 1, ["loss", "mse", "val_loss", "val_mse"])


def test_lambda_callback_and_the_on_batch_alias(data):
    events = []

    class Batches(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            events.append(("batch", batch, type(logs["loss"]).__name__))

    hooks = callbacks.LambdaCallback(on_train_begin=lambda logs: events.append(("begin",)),
                                     on_epoch_end=lambda epoch, logs: events.append(("epoch", epoch, sorted(logs))),
                                     on_train_end=lambda logs: events.append(("end", sorted(logs))))
    dense_model().fit(*data, epochs=1, batch_size=16, verbose=0, callbacks=[hooks, Batches()])
    assert events == [("begin",), ("batch", 0, "Tensor"), ("batch", 1, "Tensor"), ("epoch", 0, ["loss"]),
                      ("end", ["loss"])]
    with pytest.raises(TypeError, match="unexpected keyword argument.*on_epoch_ending"):
        callbacks.LambdaCallback(on_epoch_ending=print)


# --- TensorBoard --------------------------------------------------------------------------------------------------
def read_events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util
    events = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    events.Reload()
    return {tag: [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]
            for tag in events.Tags()["tensors"]}


def test_tensorboard_writes_train_and_validation_scalars(tmp_path, data):
    pytest.importorskip("tensorboard")
    x, y = data
    model = dense_model(lr=0.05, metrics=["mse"])
    board = callbacks.TensorBoard(tmp_path, histogram_freq=2, update_freq=3)
    history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0, callbacks=[board])
    train, validation = read_events(tmp_path / "train"), read_events(tmp_path / "validation")
    for name in ("loss", "mse"):
        for run, key in ((train, name), (validation, f"val_{name}")):
            steps, values = zip(*run[f"epoch_{name}"])
            assert steps == (0, 1, 2)
            np.testing.assert_allclose(values, history.history[key], rtol=1e-6)
    assert [(s, float(v)) for s, v in train["epoch_learning_rate"]] == [(s, np.float32(0.05)) for s in range(3)]
    assert [s for s, _ in train["batch_loss"]] == [3, 6, 9]  # 3 batches per epoch, one write every 3
    kernel = model.layers[0].kernel
    histogram = train[f"{kernel.name.split(':')[0]}/histogram"]
    assert [s for s, _ in histogram] == [0, 2]
    buckets = histogram[-1][1]  # (left edge, right edge, count) per bucket
    assert buckets[:, 2].sum() == 3 and buckets[0, 0] == pytest.approx(kernel.numpy().min())


def test_tensorboard_bad_arguments(tmp_path):
    pytest.importorskip("tensorboard")
    with pytest.raises(ValueError, match="update_freq must be 'epoch', 'batch' or a positive integer, got 'step'"):
        callbacks.TensorBoard(tmp_path, update_freq="step")
    with pytest.raises(ValueError, match="profile_batch=5"):
        callbacks.TensorBoard(tmp_path, profile_batch=5)
    with pytest.raises(NotImplementedError, match="write_images"):
        callbacks.TensorBoard(tmp_path, write_images=True)
    assert callbacks.TensorBoard(tmp_path, update_freq="batch").update_freq == 1
