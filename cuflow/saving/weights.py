"""Weights in Keras 3's HDF5 layout: ``model.weights.h5`` inside a ``.keras`` file, and ``.weights.h5`` files.

Keras 3 walks the model as an object tree and writes each object's own variables as datasets ``0``, ``1``, ...
under ``<path>/vars`` (with the object's name as an attribute):

    vars                                  the model itself (attrs: name)
    layers/dense/vars/0, .../1            a Sequential's or functional model's layers, named by class in snake
    layers/dense_1/vars/0                 case, numbered within their list (not by layer name)
    layers/conv2d/vars/0
    hidden/vars/0                         a layer held in an attribute: the attribute's name
    optimizer/vars/0, 1, 2, ...           iteration, learning_rate, then the slots (Keras's order)

Attributes are visited in sorted order (private ones last), each object once. Loading reads the same paths, checks
every count and shape first and assigns only when all fit, so a failed load changes nothing.
"""
import warnings

import numpy as np

from . import h5io
from .model_config import is_graph_model

__all__ = ["save_weights_to_h5", "load_weights_from_h5", "optimizer_state"]

# Keras 3's optimizer variables after iteration and learning_rate: groups of slots built together (each group
# variable by variable), as (cuflow slot, Keras name); the first class in the optimizer's MRO found here applies
_SLOT_GROUPS = {
    "SGD": ((("momentum", "momentum"),),),
    "Adam": ((("m", "momentum"), ("v", "velocity")), (("v_hat", "velocity_hat"),)),
    "RMSprop": ((("velocity", "velocity"),), (("momentum", "momentum"),), (("average_grad", "average_gradient"),)),
    "Adagrad": ((("accumulator", "accumulator"),),),
}


class _LearningRate:
    """Keras's ``learning_rate`` variable, for an optimizer whose rate is a float."""

    shape = ()

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.name = f"{optimizer.name}/learning_rate"

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.optimizer._learning_rate, dtype=dtype or np.float32)

    def assign(self, value):
        value = np.asarray(value)
        if value.astype(np.float32) != np.float32(self.optimizer._learning_rate):  # keep 0.001, not float32's
            self.optimizer.learning_rate = float(value)


def optimizer_state(optimizer):
    """``[(keras_name, variable)]``: the optimizer's state in Keras 3's order (iteration, learning_rate unless
    it is a schedule, then its slots)."""
    from ..optim.schedules import LearningRateSchedule
    state = [("iteration", optimizer.iterations)]
    if not isinstance(optimizer._learning_rate, LearningRateSchedule):
        state.append(("learning_rate", _LearningRate(optimizer)))
    slots = set(optimizer.slot_names())
    groups = next((_SLOT_GROUPS[c.__name__] for c in type(optimizer).__mro__ if c.__name__ in _SLOT_GROUPS),
                  (tuple((s, s) for s in optimizer.slot_names()),))
    variables = [ref.deref() for ref in optimizer._slots]
    for group in groups:
        group = [(slot, name) for slot, name in group if slot in slots]
        for var in variables:
            for slot, name in group:
                state.append((f"{var.name.split(':')[0].replace('/', '_')}_{name}", optimizer.get_slot(var, slot)))
    return state


def _saveable(obj):
    from ..layers.base import Layer
    from ..optim.optimizer import Optimizer
    return isinstance(obj, (Layer, Optimizer))


_LAYER_INTERNALS = None


def _children(obj):
    """``(attribute, value)`` pairs in Keras 3's visiting order: a Sequential's or functional model's ``layers``
    first, then the attributes sorted by name (private ones last) that a bare Layer does not have."""
    from ..layers.base import Layer
    from ..models.model import Model
    global _LAYER_INTERNALS
    if not isinstance(obj, Layer):
        return
    if _LAYER_INTERNALS is None:
        _LAYER_INTERNALS = set(vars(Layer(name="_probe")))
    names = {n for n in vars(obj) if n not in _LAYER_INTERNALS and not n.startswith("__")}
    if isinstance(obj, Model):
        names.add("layers")
        if is_graph_model(obj):
            yield "layers", obj.layers
    for name in sorted(names, key=lambda n: "~" + n if n.startswith("_") else n):
        yield name, getattr(obj, name)


def _own_variables(obj):
    """A layer's own variables as Keras orders them (trainable ones first); an optimizer's state."""
    from ..layers.base import Layer
    if isinstance(obj, Layer):
        return [w for w in obj._weights if w.trainable] + [w for w in obj._weights if not w.trainable]
    return [var for _, var in optimizer_state(obj)]


def _walk(obj, path, visited, visit):
    """Calls ``visit(obj, path)`` for each saveable object under ``obj``, once each, in Keras 3's order."""
    if id(obj) in visited:
        return
    visited.add(id(obj))
    visit(obj, path)
    for name, child in _children(obj):
        _walk_child(child, _join(path, name), visited, visit, set())


def _walk_child(child, path, visited, visit, containers):
    if _saveable(child):
        _walk(child, path, visited, visit)
    elif isinstance(child, (list, tuple, dict)) and id(child) not in containers:
        from ..layers.base import _snake_case
        containers.add(id(child))
        used = {}
        for item in (child.values() if isinstance(child, dict) else child):
            if _saveable(item):
                _walk(item, _join(path, _unique(_snake_case(type(item).__name__), used)), visited, visit)
            elif isinstance(item, (list, tuple, dict)):
                _walk_child(item, _join(path, _unique("container", used)), visited, visit, containers)


def _join(path, name):
    return f"{path}/{name}" if path else name


def _unique(name, used):
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def save_weights_to_h5(model, h5file):
    """Writes ``model``'s weights (and its optimizer's state, when compiled) into the open ``h5file``."""
    def visit(obj, path):
        group = h5file.create_group(_join(path, "vars"))
        group.attrs["name"] = obj.name
        for i, var in enumerate(_own_variables(obj)):
            h5io.write(group, str(i), np.asarray(var))

    _walk(model, "", set(), visit)


def load_weights_from_h5(model, h5file, source, skip_mismatch=False):
    """Reads the weights ``save_weights_to_h5`` wrote (or Keras 3 did) into ``model``.

    Raises:
        ValueError: a layer whose weights are missing or differ in number or shape (naming the layer, the path in
            the file, the expected and the found shape); nothing is assigned then. With ``skip_mismatch`` such a
            layer is skipped with a warning instead.
    """
    plan = []

    def visit(obj, path):
        try:
            values = h5io.group(h5file, _join(path, "vars"))
        except KeyError:
            values = {}
        try:
            _plan_object(obj, path or "/", values, plan, source, model)
        except ValueError as e:
            if not skip_mismatch:
                raise
            warnings.warn(f"Skipping loading weights for {obj.name}: {e}", stacklevel=3)

    _walk(model, "", set(), visit)
    for var, value in plan:
        var.assign(value)


def _plan_object(obj, path, values, plan, source, model):
    from ..optim.optimizer import Optimizer
    what = "Optimizer" if isinstance(obj, Optimizer) else "Layer"
    if isinstance(obj, Optimizer):
        variables = _optimizer_variables(obj, len(values), model)
        if variables is None:
            return
    else:
        variables = _own_variables(obj)
    if len(values) != len(variables):
        raise ValueError(f"{what} '{obj.name}' expects {len(variables)} weight(s) "
                         f"{[v.name for v in variables]}, but {source} has {len(values)} at '{path}'")
    found = []
    for i, var in enumerate(variables):
        value = h5io.read(values, str(i))
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"{what} '{obj.name}': weight {var.name} has shape {tuple(var.shape)}, but {source} has "
                             f"shape {tuple(value.shape)} at '{path}/vars/{i}'")
        found.append((var, value))
    plan += found


def _optimizer_variables(optimizer, saved, model):
    """The optimizer's state to load ``saved`` values into (building its slots for the model's trainable variables
    first, as Keras's compile does), or None with Keras's warning when the numbers differ."""
    state = optimizer_state(optimizer)
    if not optimizer._slots and saved > len(state):
        optimizer.build(model.trainable_variables)  # what the first training step would do: no visible change
        state = optimizer_state(optimizer)
    if saved != len(state):
        if saved:
            warnings.warn(f"Skipping variable loading for optimizer '{optimizer.name}', because it has {len(state)} "
                          f"variables whereas the saved optimizer has {saved} variables.", stacklevel=4)
        return None
    return [var for _, var in state]
