"""What ``compile`` configured, matched to the model's outputs: the losses, their weights and the metrics, and the
running values the logs report.

``loss`` is one loss (applied to every output), a list (one per output) or a dict keyed by output name (outputs
left out get none); ``loss_weights`` a scalar, list or dict; ``metrics`` a list (applied to every output), a list of
lists or a dict. Logs are named as in Keras 3: ``loss`` (the weighted total, regularization included), and with
several outputs ``<output>_loss`` (unweighted) and ``<output>_<metric>``.

The running sums stay on the device (weighted by batch size, as Keras's loss tracker); :meth:`read` is the one place
they come to the host. Metrics are resolved on the first batch, when shapes are known: that is how ``'accuracy'``
picks binary, categorical or sparse accuracy, as Keras does.
"""
__all__ = ["CompiledOutputs"]


def _is_flat_metric_list(spec):
    return not any(isinstance(m, (list, tuple, dict)) for m in spec)


class CompiledOutputs:
    """The compiled losses and metrics of one model (``model._tracker``).

    Args:
        loss, loss_weights, metrics: as given to ``compile``.
        output_names: the model's output names when known before the first batch (functional and Sequential
            models), so a bad ``loss``/``metrics`` structure fails in ``compile``.

    Raises:
        ValueError: an unknown loss or metric name, a list of the wrong length, a dict key that names no output.
    """

    def __init__(self, loss, loss_weights=None, metrics=None, output_names=None):
        from .. import losses as losses_mod, metrics as metrics_mod
        self.loss, self.loss_weights, self.requests = loss, loss_weights, metrics
        for spec in _leaves(loss):  # unknown names fail here, not on the first batch
            losses_mod.get(spec)
        for spec in _leaves(metrics):
            if spec is not None and not (isinstance(spec, str) and spec.lower() in ("accuracy", "acc")):
                metrics_mod.get(spec)
        self.names, self.metrics, self._names_guessed = None, None, False
        self.has_loss = any(spec is not None for spec in _leaves(loss))
        if output_names is not None:
            self._match(list(output_names))
        self.reset()

    # --- matching the specs to the outputs ----------------------------------------------------------------------
    def _match(self, names):
        from .. import losses as losses_mod
        self.names = names
        self.loss_specs = self._per_output(self.loss, "loss")
        self.losses = []
        for spec in self.loss_specs:
            fn = losses_mod.get(spec)
            if fn is not None and not isinstance(fn, losses_mod.Loss):
                fn = losses_mod.LossFunctionWrapper(fn)  # a per-sample function: Keras wraps it to weight and average
            self.losses.append(fn)
        self.weights = [1.0 if w is None else float(w) for w in self._per_output(self.loss_weights, "loss_weights")]
        metrics = self.requests
        if isinstance(metrics, dict) or (isinstance(metrics, (list, tuple)) and not _is_flat_metric_list(metrics)):
            per_output = self._per_output(metrics if isinstance(metrics, dict) else list(metrics), "metrics")
        else:  # one list for every output
            per_output = [metrics] * len(names)
        self.metric_requests = [[] if m is None else list(m) if isinstance(m, (list, tuple)) else [m]
                                for m in per_output]

    def _per_output(self, spec, what):
        names, count = self.names, len(self.names)
        if spec is None:
            return [None] * count
        if isinstance(spec, dict):
            unknown = [key for key in spec if key not in names]
            if unknown and count == 1 and len(spec) == 1 and self._names_guessed:
                return list(spec.values())
            if unknown:
                raise ValueError(f"compile: {what} has key(s) {unknown}, which name no output of the model; its "
                                 f"outputs are {names}")
            return [spec.get(name) for name in names]
        if isinstance(spec, (list, tuple)):
            if len(spec) != count:
                raise ValueError(f"compile: {what} is a list of {len(spec)} but the model has {count} output(s) "
                                 f"{names}")
            return list(spec)
        return [spec] * count

    def _build(self, y_pred):
        if isinstance(y_pred, dict):
            names = list(y_pred)
        elif isinstance(y_pred, (list, tuple)) and len(y_pred) > 1:
            names = [f"output_{i + 1}" for i in range(len(y_pred))]
        else:
            names = ["output"]
        self._names_guessed = not isinstance(y_pred, dict)
        self._match(names)

    # --- structures -> one entry per output ---------------------------------------------------------------------
    def _predictions(self, y_pred):
        if self.names is None:
            self._build(y_pred)
        if isinstance(y_pred, dict):
            return [y_pred[name] for name in self.names]
        flat = list(y_pred) if isinstance(y_pred, (list, tuple)) else [y_pred]
        if len(flat) != len(self.names):
            raise ValueError(f"The model returned {len(flat)} output(s) but was compiled for {len(self.names)}: "
                             f"{self.names}")
        return flat

    def _per_output_data(self, value, what, repeat_single):
        count = len(self.names)
        if value is None:
            return [None] * count
        if isinstance(value, dict):
            unknown = [key for key in value if key not in self.names]
            if unknown:
                raise ValueError(f"{what} has key(s) {unknown}, which name no output of the model; its outputs are "
                                 f"{self.names}")
            return [value.get(name) for name in self.names]
        if isinstance(value, (list, tuple)):
            if len(value) != count:
                raise ValueError(f"{what}: the model has {count} output(s) {self.names}, got a list of {len(value)}")
            return list(value)
        if count > 1 and not repeat_single:
            raise ValueError(f"{what}: the model has {count} outputs {self.names}, so it needs a list or dict of "
                             f"{count} targets, got one array of shape {tuple(value.shape)}")
        return [value] * count

    def flatten(self, y, y_pred, sample_weight):
        """``(targets, predictions, sample weights)``, one entry per output (one sample weight serves all)."""
        preds = self._predictions(y_pred)
        return (self._per_output_data(y, "y", False), preds,
                self._per_output_data(sample_weight, "sample_weight", True))

    # --- the loss -----------------------------------------------------------------------------------------------
    def __call__(self, y, y_pred, sample_weight=None):
        """The weighted total of the outputs' losses (regularization is the model's to add)."""
        ys, preds, weights = self.flatten(y, y_pred, sample_weight)
        total, self._last = None, []
        for name, fn, weight, target, pred, sw in zip(self.names, self.losses, self.weights, ys, preds, weights):
            if fn is None:
                self._last.append(None)
                continue
            if target is None:
                raise ValueError(f"No target (y) for output '{name}', which has a loss; pass y for it")
            value = fn(target, pred, sample_weight=sw)
            self._last.append(value)
            term = value if weight == 1.0 else value * weight
            total = term if total is None else total + term
        if total is None:
            raise ValueError(f"compile: no loss for any of the model's outputs {self.names}")
        return total

    # --- running values -----------------------------------------------------------------------------------------
    def reset(self):
        self.loss_sum, self.count, self._last = None, 0, None
        self.output_sums = [None] * len(self.names or [])
        for _, metric, _ in self.metrics or []:
            metric.reset_state()

    def _resolve(self, ys, preds):
        from .. import metrics as metrics_mod
        self.metrics, used = [], set()
        prefix = len(self.names) > 1
        for i, (name, requests) in enumerate(zip(self.names, self.metric_requests)):
            for spec in requests:
                if isinstance(spec, str):
                    target = ys[i] if ys[i] is not None else preds[i]
                    metric = metrics_mod.resolve_accuracy(spec, self.loss_specs[i], tuple(target.shape),
                                                          tuple(preds[i].shape))
                    label = spec
                else:
                    metric = metrics_mod.get(spec)
                    if id(metric) in used:  # one Metric object listed for several outputs: each gets its own
                        metric = type(metric).from_config(metric.get_config())
                    used.add(id(metric))
                    label = getattr(metric, "name", type(metric).__name__)
                self.metrics.append((f"{name}_{label}" if prefix else label, metric, i))
        self.output_sums = [None] * len(self.names)

    def update(self, loss, y, y_pred, sample_weight, n):
        """Adds one batch of ``n`` samples: its total ``loss``, the outputs' losses from the last call, metrics."""
        ys, preds, weights = self.flatten(y, y_pred, sample_weight)
        if self.metrics is None:
            self._resolve(ys, preds)
        weighted = loss * float(n)
        self.loss_sum = weighted if self.loss_sum is None else self.loss_sum + weighted
        self.count += n
        if len(self.names) > 1 and self._last:  # the outputs' own losses, from the compute_loss just made
            for i, value in enumerate(self._last):
                if value is not None:
                    previous = self.output_sums[i]
                    self.output_sums[i] = value * float(n) if previous is None else previous + value * float(n)
        self._last = None
        for _, metric, i in self.metrics:
            if ys[i] is not None:
                metric.update_state(ys[i], preds[i], sample_weight=weights[i])

    def read(self):
        """The logs so far as Python floats: ``loss``, ``<output>_loss`` ..., then the metrics."""
        logs = {"loss": float(self.loss_sum) / self.count if self.count else float("nan")}
        for name, total in zip(self.names or [], self.output_sums):
            if total is not None:
                logs[f"{name}_loss"] = float(total) / self.count
        for name, metric, _ in self.metrics or []:
            logs[name] = float(metric.result())
        return logs

    @property
    def log_names(self):
        """``['loss', <output>_loss ..., metrics ...]`` once known (after the first batch)."""
        names = ["loss"]
        if self.names and len(self.names) > 1:
            names += [f"{n}_loss" for n, fn in zip(self.names, self.losses) if fn is not None]
        return names + [name for name, _, _ in self.metrics or []]


def _leaves(spec):
    if isinstance(spec, dict):
        return [leaf for v in spec.values() for leaf in _leaves(v)]
    if isinstance(spec, (list, tuple)):
        return [leaf for v in spec for leaf in _leaves(v)]
    return [spec]
