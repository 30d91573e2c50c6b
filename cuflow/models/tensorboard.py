"""``keras.callbacks.TensorBoard``: real TensorBoard event files written with the tensorboard package.

Keras 3's layout and tags: ``log_dir/train`` holds ``epoch_loss``, ``epoch_<metric>`` and ``epoch_learning_rate``,
``log_dir/validation`` holds the ``val_*`` entries under the same tags without the prefix (so TensorBoard draws train
and validation on one chart); ``update_freq=N`` adds ``batch_*`` every N training batches, ``histogram_freq`` the
weights' histograms, and ``evaluate(callbacks=[tb])`` writes ``evaluation_<name>_vs_iterations``. Values are
TensorFlow 2 style tensor summaries (scalar plugin), which ``tensorboard --logdir`` reads as scalars.

tensorboard is an optional dependency (``pip install 'cuflow[tensorboard]'``), imported when the callback is made.
"""
import os
import time

from .callbacks import Callback, _scalar

__all__ = ["TensorBoard"]


def _summary_api():
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.histogram import summary_v2 as histogram
        from tensorboard.plugins.scalar import summary_v2 as scalar
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as e:
        raise ImportError("keras.callbacks.TensorBoard needs the tensorboard package: pip install "
                          f"'cuflow[tensorboard]' (or pip install tensorboard). ({e})") from e
    return event_pb2, scalar, histogram, EventFileWriter


class TensorBoard(Callback):
    """Writes the training curves (and optionally weight histograms) for TensorBoard.

    Run ``tensorboard --logdir=<log_dir>`` to view them.

    Args:
        log_dir: the directory to write to; ``train/`` and ``validation/`` are made inside it.
        histogram_freq: every this many epochs, write a histogram of each weight (0: never).
        write_graph: write the model's config (when the model has ``to_json``) for TensorBoard's graph tab; no op
            graph is written, as in Keras 3 without the TensorFlow backend.
        write_images: not supported (raises if True).
        write_steps_per_second: also log training steps per second (``epoch_steps_per_second``, and
            ``batch_steps_per_second`` with batch-level updates).
        update_freq: ``'epoch'``, ``'batch'`` (= 1) or an integer N: also write the batch logs (``batch_loss``)
            every N training batches. Each such write reads the batch's loss from the device.
        profile_batch: must be 0: profiling is not available in cuflow (use ``cuflow``'s profiler).
        embeddings_freq, embeddings_metadata: not supported (raise if set).

    Raises:
        ImportError: the tensorboard package is not installed.
        ValueError: ``update_freq`` is not ``'epoch'``, ``'batch'`` or a positive integer, or ``profile_batch`` is
            set.
        NotImplementedError: ``write_images`` or ``embeddings_freq`` is set.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from cuflow import keras
    >>> model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> log_dir = tempfile.mkdtemp()
    >>> _ = model.fit(np.ones((8, 2)), np.ones(8), epochs=2, validation_split=0.25, verbose=0,
    ...               callbacks=[keras.callbacks.TensorBoard(log_dir)])
    >>> sorted(os.listdir(log_dir))
    ['train', 'validation']
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        self._event_pb2, self._scalar_pb, self._histogram_pb, self._EventFileWriter = _summary_api()
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (not isinstance(update_freq, int) or isinstance(update_freq, bool)
                                       or update_freq < 1):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive integer, got "
                             f"{update_freq!r}")
        if profile_batch:
            raise ValueError("Profiling is not yet available with the cuflow backend. Received: "
                             f"profile_batch={profile_batch} (must be 0)")
        if write_images:
            raise NotImplementedError("TensorBoard: write_images=True (weights as images) is not supported; got "
                                      "write_images=True")
        if embeddings_freq or embeddings_metadata:
            raise NotImplementedError(f"TensorBoard: the embedding projector is not supported; got "
                                      f"embeddings_freq={embeddings_freq}, embeddings_metadata={embeddings_metadata!r}")
        if not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be a non-negative integer, got {histogram_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq, self.write_graph = histogram_freq, write_graph
        self.write_images, self.write_steps_per_second = write_images, write_steps_per_second
        self.update_freq, self.profile_batch = update_freq, profile_batch
        self.embeddings_freq, self.embeddings_metadata = embeddings_freq, embeddings_metadata
        self._writers = {}
        self._training = False
        self._global_train_batch = 0
        self._epoch_started = self._batch_started = 0.0
        self._epoch_batches = 0

    # --- writers -------------------------------------------------------------------------------------------------
    def _writer(self, run):
        if run not in self._writers:  # made lazily, so no empty event files appear
            self._writers[run] = self._EventFileWriter(os.path.join(self.log_dir, run))
        return self._writers[run]

    def _write(self, run, summary, step):
        event = self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary)
        self._writer(run).add_event(event)

    def _write_scalars(self, run, prefix, logs, step):
        for name, value in logs.items():
            try:
                value = _scalar(value)
            except (TypeError, ValueError):
                continue  # not a scalar: TensorBoard's scalar charts cannot show it
            self._write(run, self._scalar_pb.scalar_pb(prefix + name, value), step)

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # --- hooks ---------------------------------------------------------------------------------------------------
    def set_model(self, model):
        super().set_model(model)
        if self.write_graph and hasattr(model, "to_json"):
            self._write_model_config(model)

    def _write_model_config(self, model):
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.util import tensor_util
        try:
            config = model.to_json()
        except Exception:  # noqa: BLE001  (as Keras: a model that cannot be serialized is simply not drawn)
            return
        metadata = summary_pb2.SummaryMetadata()
        metadata.plugin_data.plugin_name = "graph_keras_model"  # the name TensorBoard's graph plugin looks for
        metadata.plugin_data.content = b"1"
        summary = summary_pb2.Summary()
        summary.value.add(tag="keras", metadata=metadata, tensor=tensor_util.make_tensor_proto(config))
        self._write("train", summary, 0)

    def on_train_begin(self, logs=None):
        self._training, self._global_train_batch = True, 0

    def on_train_end(self, logs=None):
        self._training = False
        self._close_writers()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started, self._epoch_batches = time.perf_counter(), 0

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        self._epoch_batches += 1
        if self.write_steps_per_second:
            self._batch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        batch_logs = dict(logs or {})
        if self.write_steps_per_second:
            batch_logs["steps_per_second"] = 1.0 / max(time.perf_counter() - self._batch_started, 1e-9)
        self._write_scalars("train", "batch_", batch_logs, self._global_train_batch)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        validation = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "learning_rate"):
            train["learning_rate"] = float(optimizer.learning_rate)
        if self.write_steps_per_second:
            train["steps_per_second"] = self._epoch_batches / max(time.perf_counter() - self._epoch_started, 1e-9)
        self._write_scalars("train", "epoch_", train, epoch)
        if validation:
            self._write_scalars("validation", "epoch_", validation, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            for weight in self.model.weights:
                tag = f"{weight.name.split(':')[0]}/histogram"  # 'dense/kernel/histogram'
                self._write("train", self._histogram_pb.histogram_pb(tag, weight.numpy()), epoch)
        for writer in self._writers.values():
            writer.flush()  # an epoch is a natural point for `tensorboard --logdir` to see new data

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if logs and optimizer is not None and hasattr(optimizer, "iterations"):
            step = int(optimizer.iterations.numpy())
            self._write_scalars("validation", "evaluation_", {f"{k}_vs_iterations": v for k, v in logs.items()},
                                step)
        if not self._training:  # a standalone evaluate(): nothing more will come
            self._close_writers()
