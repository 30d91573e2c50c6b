"""The legacy HDF5 format of tf.keras 2 (``model.save('m.h5')``), which Keras 3 still reads and writes.

Layout::

    attrs: model_config (JSON, tf.keras 2 configs), training_config (JSON), keras_version, backend
    model_weights/                      attrs: layer_names, keras_version, backend
        dense/                          attrs: weight_names = ["dense/kernel:0", "dense/bias:0"]
            dense/kernel:0, dense/bias:0
    optimizer_weights/                  attrs: weight_names = ["adam/iteration", ...]

Weights are matched to the model's layers in order (layers without weights left out), each layer's weights
trainable first, as tf.keras and Keras 3 do; readers follow ``weight_names``, so files written by either load.
"""
import json
import os
import warnings

import numpy as np

from . import h5io
from .atomic import atomic_path
from .model_config import legacy_config, compile_from_config
from .serialization import serialize_keras_object, deserialize_keras_object
from .weights import optimizer_state

__all__ = ["save_h5", "load_h5", "load_h5_weights", "TF_KERAS_VERSION"]

TF_KERAS_VERSION = "2.15.0"  # the tf.keras release whose .h5 layout this follows
BACKEND = "cuflow"


def save_h5(model, filepath, include_optimizer=True):
    """Writes ``model`` (config, weights and, if compiled and ``include_optimizer``, training config and optimizer
    state) to the ``.h5`` file ``filepath``, atomically."""
    entry = serialize_keras_object(model)
    model_config = json.dumps(legacy_config(entry))
    training_config = None
    if include_optimizer and entry.get("compile_config"):
        compiled = entry["compile_config"]
        training_config = json.dumps({
            "loss": _canonical(legacy_config(compiled["loss"])),
            "metrics": _canonical(legacy_config(compiled["metrics"])),
            "weighted_metrics": None, "loss_weights": compiled["loss_weights"],
            "optimizer_config": legacy_config(compiled["optimizer"])})
    with atomic_path(filepath) as tmp:
        with h5io.open_h5(tmp, "w", filepath) as f:
            f.attrs["backend"] = BACKEND
            f.attrs["keras_version"] = TF_KERAS_VERSION
            f.attrs["model_config"] = model_config.encode("utf8")
            if training_config is not None:
                f.attrs["training_config"] = training_config.encode("utf8")
            _save_model_weights(f.create_group("model_weights"), model)
            if training_config is not None:
                _save_optimizer_weights(f, model.optimizer)


def _canonical(names):
    """Loss and metric aliases by their full names ('mse' -> 'mean_squared_error'): Keras 3's legacy reader resolves
    'mse' among the metrics and fails, the full names it reads everywhere."""
    from .. import losses
    if isinstance(names, list):
        return [_canonical(n) for n in names]
    fn = losses._FUNCTIONS.get(names) if isinstance(names, str) else None
    return fn.__name__ if fn is not None else names


def _save_model_weights(group, model):
    h5io.set_string_list(group, "layer_names", [layer.name for layer in model.layers])
    group.attrs["backend"] = BACKEND
    group.attrs["keras_version"] = TF_KERAS_VERSION
    for layer in sorted(model.layers, key=lambda layer: layer.name):
        _save_subset(group.create_group(layer.name), [(w.name, w) for w in layer.weights])
    if model._weights:
        _save_subset(group.create_group("top_level_model_weights"), [(w.name, w) for w in model.weights
                                                                      if any(w is o for o in model._weights)])


def _save_subset(group, named):
    names, seen = [], set()
    for name, _ in named:
        unique, i = name, 0
        while unique in seen:
            i += 1
            unique = f"{name}_{i}"
        seen.add(unique)
        names.append(unique)
    h5io.set_string_list(group, "weight_names", names)
    for name, (_, value) in zip(names, named):
        h5io.write(group, name, np.asarray(value))


def _save_optimizer_weights(f, optimizer):
    _save_subset(f.create_group("optimizer_weights"),
                 [(f"{optimizer.name}/{name}", var) for name, var in optimizer_state(optimizer)])


def load_h5(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model saved in the ``.h5`` file ``filepath`` (by cuflow, tf.keras 2 or Keras 3)."""
    with h5io.open_h5(filepath, "r", filepath) as f:
        model_config = _json_attr(f, "model_config", filepath)
        if model_config is None:
            raise ValueError(f"No model config found in the file at {filepath}: a weights-only file? Build the "
                             "model in code and call model.load_weights() on it")
        model = deserialize_keras_object(model_config, custom_objects, safe_mode, kind="layer")
        load_legacy_weights(model, h5io.group(f, "model_weights"), os.fspath(filepath))
        training_config = _json_attr(f, "training_config", filepath) if compile else None
        if training_config is not None:
            compile_from_config(model, training_config, custom_objects)
            if "optimizer_weights" in f:
                _load_optimizer_weights(model, h5io.group(f, "optimizer_weights"))
    return model


def _json_attr(f, name, filepath):
    value = f.attrs.get(name)
    if value is None:
        return None
    try:
        return json.loads(value.decode("utf8") if isinstance(value, bytes) else str(value))
    except json.JSONDecodeError as e:
        raise ValueError(f"{filepath}: the {name} attribute is not valid JSON ({e})") from None


def load_h5_weights(model, filepath, skip_mismatch=False, by_name=False):
    """Loads a legacy ``.h5`` weights file (``save_weights`` of tf.keras 2, or a whole-model ``.h5``)."""
    with h5io.open_h5(filepath, "r", filepath) as f:
        group = h5io.group(f, "model_weights") if "layer_names" not in f.attrs and "model_weights" in f else f
        load_legacy_weights(model, group, os.fspath(filepath), skip_mismatch, by_name)


def load_legacy_weights(model, group, source, skip_mismatch=False, by_name=False):
    """Assigns the weights of a ``model_weights`` group to ``model``'s layers, in order (or by layer name); every
    count and shape is checked before anything is assigned.

    Raises:
        ValueError: a different number of layers with weights, or of weights in a layer, or a shape that differs
            (naming the layer, the expected and the found shape).
    """
    saved = [(name, h5io.string_list(h5io.group(group, name), "weight_names"))
             for name in h5io.string_list(group, "layer_names")]
    saved = [(name, weights) for name, weights in saved if weights]
    layers = [layer for layer in model.layers if layer.weights]
    if by_name:
        by_layer = dict(saved)
        pairs = [(layer, (layer.name, by_layer[layer.name])) for layer in layers if layer.name in by_layer]
    else:
        if len(saved) != len(layers):
            raise ValueError(f"Layer count mismatch when loading weights from {source}: the model has {len(layers)} "
                             f"layers with weights {[layer.name for layer in layers]}, the file has {len(saved)} "
                             f"{[name for name, _ in saved]}")
        pairs = list(zip(layers, saved))
    if "top_level_model_weights" in group:
        top = h5io.string_list(h5io.group(group, "top_level_model_weights"), "weight_names")
        if top or model._weights:
            pairs.append((model, ("top_level_model_weights", top)))
    plan = []
    for layer, (name, weight_names) in pairs:
        try:
            plan += _plan_layer(layer, h5io.group(group, name), name, weight_names, source)
        except ValueError as e:
            if not skip_mismatch:
                raise
            warnings.warn(f"Skipping loading weights for layer '{layer.name}': {e}", stacklevel=3)
    for var, value in plan:
        var.assign(value)


def _plan_layer(layer, group, name, weight_names, source):
    weights = list(layer._weights) if name == "top_level_model_weights" else layer.weights
    if len(weight_names) != len(weights):
        raise ValueError(f"Weight count mismatch for layer '{layer.name}' (named '{name}' in {source}): the layer "
                         f"has {len(weights)} weight(s) {[w.name for w in weights]}, the file has "
                         f"{len(weight_names)} {weight_names}")
    plan = []
    for var, weight_name in zip(weights, weight_names):
        value = h5io.read(group, weight_name)
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"Layer '{layer.name}': weight {var.name} has shape {tuple(var.shape)}, but {source} "
                             f"has shape {tuple(value.shape)} at '{name}/{weight_name}'")
        plan.append((var, value))
    return plan


def _load_optimizer_weights(model, group):
    optimizer = model.optimizer
    names = h5io.string_list(group, "weight_names")
    if not optimizer._slots:
        optimizer.build(model.trainable_variables)
    state = [var for _, var in optimizer_state(optimizer)]
    values = [h5io.read(group, name) for name in names]
    if len(values) != len(state) or any(tuple(v.shape) != tuple(s.shape) for v, s in zip(values, state)):
        warnings.warn("Error in loading the saved optimizer state (its variables do not match this optimizer's). "
                      "As a result, your model is starting with a freshly initialized optimizer.", stacklevel=3)
        return
    for var, value in zip(state, values):
        var.assign(value)
