"""``Functional``: the model ``keras.Model(inputs, outputs)`` builds from layer calls on KerasTensors.

Calling a layer on ``keras.Input`` tensors records the call as a node (``cuflow/layers/core.py``). The model walks the
nodes back from its outputs once, sorts them topologically, and ``call`` replays them on real tensors. A layer called
twice is shared (one set of weights); a model called on KerasTensors is one layer of the outer graph.

Example:

>>> import numpy as np
>>> from cuflow import keras
>>> features = keras.Input(shape=(3,), name="features")
>>> hidden = keras.layers.Dense(8, activation="relu")(features)
>>> price = keras.layers.Dense(1, name="price")(hidden)
>>> kind = keras.layers.Dense(4, activation="softmax", name="kind")(hidden)
>>> model = keras.Model(features, [price, kind])
>>> model.output_names, [p.shape for p in model.predict(np.zeros((2, 3)), verbose=0)]
(['price', 'kind'], [(2, 1), (2, 4)])
"""
import collections

import numpy as np

from ..tensor import Tensor, constant
from ..ops.array import cast, expand_dims, squeeze
from ..layers.base import Layer
from ..layers.core import InputLayer, KerasTensor, flatten, pack_like
from ..saving.model_config import deserialize_layer, model_kwargs, serialize_layer
from ..saving.serialization import deserialize_keras_object, serialize_keras_object
from .model import Model

__all__ = ["Functional"]


class Functional(Model):
    """A model defined by a graph of layers: ``keras.Model(inputs, outputs)``.

    Args:
        inputs: the model's input(s): a KerasTensor from ``keras.Input``, a list of them, or a dict (whose keys
            are then the names under which data is passed).
        outputs: KerasTensor(s) computed from ``inputs``: one, a list or a dict (``predict`` returns the same
            structure; with a dict, losses and metrics may be keyed by its keys).
        name: the model's name.

    Attributes:
        inputs, outputs: the flat lists of KerasTensors.
        input_names, output_names: the names data and losses are matched by (Input names or dict keys; the
            producing layers' names or dict keys).
        layers: every layer of the graph in topological order, InputLayers included.

    Raises:
        TypeError: an input or output that is not a KerasTensor.
        ValueError: inputs that do not come from ``keras.Input``, an output that cannot be computed from the
            inputs (naming the missing input), or two layers with the same name.
    """

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)
        self._inputs_struct = _structure(inputs, "inputs")
        self._outputs_struct = _structure(outputs, "outputs")
        self.inputs, self.outputs = flatten(self._inputs_struct), flatten(self._outputs_struct)
        for tensor in self.inputs:
            if not isinstance(tensor._node.layer, InputLayer):
                raise ValueError(f"Model '{self.name}': inputs must come from keras.Input(), got {tensor!r} "
                                 f"computed by layer '{tensor._node.layer.name}'")
        self._nodes, layers = _sort_graph(self.inputs, self.outputs, self.name)
        names = collections.Counter(layer.name for layer in layers)
        repeated = [n for n, count in names.items() if count > 1]
        if repeated:
            raise ValueError(f"Model '{self.name}': the layer name(s) {repeated} are used more than once; all layer "
                             "names in a model must be unique")
        object.__setattr__(self, "_sublayers", layers)  # so the weights are the model's (shared layers once)
        self.input_names = (list(self._inputs_struct) if isinstance(self._inputs_struct, dict)
                            else [t.name for t in self.inputs])
        self.output_names = (list(self._outputs_struct) if isinstance(self._outputs_struct, dict)
                             else [t._node.layer.name for t in self.outputs])
        self.input_shape = _shapes(self._inputs_struct)
        self.output_shape = _shapes(self._outputs_struct)
        self.built = True

    @property
    def input(self):
        """The model's input KerasTensor(s), in the structure given to the constructor."""
        return self._inputs_struct

    @property
    def output(self):
        """The model's output KerasTensor(s), in the structure given to the constructor."""
        return self._outputs_struct

    def build(self, input_shape=None):
        self.built = True  # built when constructed

    # --- running the graph --------------------------------------------------------------------------------------
    def _convert_inputs(self, inputs):
        return pack_like(self._inputs_struct, self._standardize(inputs))

    def _standardize(self, inputs):
        """``inputs`` as a list of Tensors in ``self.inputs`` order: dicts matched by name, each converted to its
        Input's dtype and checked against its shape (Keras's rank fix-up included: a missing or extra trailing
        axis of size 1)."""
        count = len(self.inputs)
        if isinstance(inputs, dict):
            missing = [n for n in self.input_names if n not in inputs]
            if missing:
                raise ValueError(f"Model '{self.name}': missing input(s) {missing}; the model's inputs are "
                                 f"{self.input_names}, got a dict with keys {list(inputs)}")
            values = [inputs[n] for n in self.input_names]
        elif isinstance(inputs, (list, tuple)) and (count > 1 or (len(inputs) == 1 and _is_array(inputs[0]))):
            values = list(inputs)
        else:
            values = [inputs]
        if len(values) != count:
            raise ValueError(f"Model '{self.name}' expects {count} input(s) {self.input_names}, but it received "
                             f"{len(values)} input tensor(s)")
        return [self._input_tensor(value, ref, i) for i, (value, ref) in enumerate(zip(values, self.inputs))]

    def _input_tensor(self, value, ref, index):
        if isinstance(value, Tensor):
            tensor = value if value.dtype.name == ref.dtype else cast(value, ref.dtype)
        else:
            tensor = constant(np.asarray(value), dtype=ref.dtype)
        expected, shape = ref.shape, tuple(tensor.shape)
        if len(shape) == len(expected) + 1 and shape[-1] == 1:
            tensor = squeeze(tensor, -1)
        elif len(shape) == len(expected) - 1 and expected[-1] == 1:
            tensor = expand_dims(tensor, -1)
        actual = tuple(tensor.shape)
        if len(actual) != len(expected) or any(e is not None and e != a for e, a in zip(expected, actual)):
            raise ValueError(f"Input {index} ('{self.input_names[index]}') of model '{self.name}' is incompatible: "
                             f"expected shape {tuple(expected)}, got shape {shape}")
        return tensor

    def call(self, inputs, training=None):
        values = {id(t): v for t, v in zip(self.inputs, self._standardize(inputs))}
        for node in self._nodes:
            if not node.input_tensors:  # an InputLayer: its value is fed
                continue
            args = pack_like(node.inputs, [values[id(t)] for t in node.input_tensors])
            kwargs = node.kwargs if "training" in node.kwargs else {**node.kwargs, "training": training}
            outputs = node.layer(args, *node.args, **kwargs)
            for tensor, value in zip(node.output_tensors, flatten(outputs)):
                values[id(tensor)] = value
        return pack_like(self._outputs_struct, [values[id(t)] for t in self.outputs])

    def compute_output_shape(self, input_shape):
        shapes = (_flat_shapes(input_shape) if not isinstance(input_shape, dict)
                  else [input_shape[n] for n in self.input_names])
        if len(shapes) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self.inputs)} input(s) {self.input_names}, got "
                             f"shapes {shapes}")
        for i, (shape, ref) in enumerate(zip(shapes, self.inputs)):
            if len(shape) != ref.ndim or any(e is not None and a is not None and e != a
                                             for e, a in zip(ref.shape[1:], tuple(shape)[1:])):
                raise ValueError(f"Input {i} ('{self.input_names[i]}') of model '{self.name}' is incompatible: "
                                 f"expected shape {tuple(ref.shape)}, got shape {tuple(shape)}")
        batch = tuple(shapes[0])[0] if shapes and len(shapes[0]) else None
        return pack_like(self._outputs_struct, [(batch,) + tuple(t.shape[1:]) for t in self.outputs])

    # --- describing the graph -----------------------------------------------------------------------------------
    @property
    def layers(self):
        return list(self._sublayers)

    def _own_nodes(self):
        """Each layer's calls that belong to this model, in call order (a shared layer may have others)."""
        mine = {id(node) for node in self._nodes}
        return {id(layer): [n for n in layer._inbound_nodes if id(n) in mine] for layer in self.layers}

    def _summary_rows(self):
        own = self._own_nodes()
        chain = all(len(own[id(layer)]) <= 1 for layer in self.layers) and len(self.inputs) == 1 and all(
            len(node.input_tensors) <= 1 for node in self._nodes)
        rows = []
        for layer in self.layers:
            nodes = own[id(layer)]
            shape = _shapes(nodes[0].outputs) if nodes else layer.output_shape
            links = None
            if not chain:
                links = [_history_name(t, own) for node in nodes for t in node.input_tensors]
            rows.append((layer, shape, links))
        return rows

    def get_config(self):
        """The graph in Keras 3's functional format: ``name``, ``trainable``, ``layers`` (each layer's entry as
        :func:`cuflow.saving.serialize_keras_object` writes it, with its ``name`` and ``inbound_nodes``: the calls'
        arguments, KerasTensors as ``__keras_tensor__`` entries with their ``keras_history`` ``[layer name, node
        index, tensor index]``), ``input_layers`` and ``output_layers``."""
        own = self._own_nodes()
        history = lambda t: _history(t, own)  # noqa: E731

        def argument(tensor):
            return {"class_name": "__keras_tensor__", "config": {"shape": list(tensor.shape), "dtype": tensor.dtype,
                                                                 "keras_history": history(tensor)}}
        layers = []
        for layer in self.layers:
            entry = serialize_layer(layer)
            entry["name"] = layer.name
            entry["inbound_nodes"] = [serialize_keras_object(
                {"args": [_map_keras_tensors(argument, node.inputs), *node.args], "kwargs": dict(node.kwargs)})
                for node in own[id(layer)] if node.input_tensors]
            layers.append(entry)

        def refs(structure):
            if isinstance(structure, KerasTensor):
                return [history(structure)]
            return _map_keras_tensors(history, structure)
        return {"name": self.name, "trainable": self.trainable, "layers": layers,
                "input_layers": refs(self._inputs_struct), "output_layers": refs(self._outputs_struct)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuilds the graph ``get_config`` described (or a functional config Keras 3 or tf.keras 2 wrote): creates
        each layer from its entry, then replays its calls once the tensors they take exist (a layer's calls in order,
        as Keras does).

        Raises:
            ValueError: an unknown layer class (pass it in ``custom_objects``), or calls whose inputs are never
                computed.
        """
        created, produced, pending = {}, {}, {}
        for entry in config["layers"]:
            layer = deserialize_layer(entry, custom_objects)
            name = entry.get("name", layer.name)
            created[name] = layer
            produced[name] = [flatten(layer.output)] if isinstance(layer, InputLayer) else []
            pending[name] = collections.deque(entry.get("inbound_nodes", []))

        def tensor(ref):
            layer_name, node_index, tensor_index = ref[:3]
            calls = produced.get(layer_name)
            if calls is None:
                raise ValueError(f"Functional.from_config: a call refers to layer {layer_name!r}, which is not in "
                                 "the config's layers")
            if node_index >= len(calls):
                raise _NotYet
            return calls[node_index][tensor_index]

        while any(pending.values()):
            progressed = False
            for name, queue in pending.items():
                while queue:
                    try:
                        args, kwargs = _node_arguments(queue[0], tensor, custom_objects)
                    except _NotYet:
                        break
                    queue.popleft()
                    produced[name].append(flatten(created[name](*args, **kwargs)))
                    progressed = True
            if not progressed:
                stuck = [name for name, queue in pending.items() if queue]
                raise ValueError(f"Functional.from_config: the inputs of layer(s) {stuck} are never computed")

        def tensors(refs):
            if isinstance(refs, dict):
                return {k: tensors(v) for k, v in refs.items()}
            if isinstance(refs, (list, tuple)) and len(refs) >= 3 and isinstance(refs[0], str):
                return tensor(refs)
            found = [tensors(r) for r in refs]
            return found[0] if len(found) == 1 else found
        return cls(tensors(config["input_layers"]), tensors(config["output_layers"]), **model_kwargs(config))


# --- helpers -------------------------------------------------------------------------------------------------------
class _NotYet(Exception):
    """A call's input tensor is not produced yet (from_config replays that call later)."""


def _structure(value, what):
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]  # Keras unwraps one-element lists
    leaves = flatten(value)
    if not leaves or not all(isinstance(t, KerasTensor) for t in leaves):
        raise TypeError(f"Model: {what} must be KerasTensors (from keras.Input or layer calls on them): one, a "
                        f"list or a dict, got {value!r}")
    return value


def _is_array(value):
    return isinstance(value, (Tensor, np.ndarray)) or hasattr(value, "__array__")


def _shapes(structure):
    if isinstance(structure, KerasTensor):
        return tuple(structure.shape)
    if isinstance(structure, dict):
        return {k: _shapes(v) for k, v in structure.items()}
    return [_shapes(v) for v in structure]


def _flat_shapes(shape):
    if isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, (int, np.integer)) for d in shape):
        return [shape]
    return [s for item in shape for s in _flat_shapes(item)]


def _map_keras_tensors(fn, structure):
    if isinstance(structure, KerasTensor):
        return fn(structure)
    if isinstance(structure, dict):
        return {k: _map_keras_tensors(fn, v) for k, v in structure.items()}
    return [_map_keras_tensors(fn, v) for v in structure]


def _history(tensor, own):
    """``[layer name, node index among this model's calls of that layer, tensor index]``."""
    layer = tensor._node.layer
    return [layer.name, own[id(layer)].index(tensor._node), tensor._index]


def _history_name(tensor, own):
    name, node, index = _history(tensor, own)
    return f"{name}[{node}][{index}]"


def _node_arguments(node, tensor, custom_objects=None):
    """A config's recorded call as ``(args, kwargs)`` with real KerasTensors (Keras 3's ``{"args", "kwargs"}`` form, or
    tf.keras 2's ``[[layer, node, tensor, kwargs], ...]``)."""
    if isinstance(node, list):
        inputs = [tensor(ref) for ref in node]
        kwargs = node[0][3] if node and len(node[0]) > 3 else {}
        return [inputs[0] if len(inputs) == 1 else inputs], _without_empty_mask(kwargs)

    def rebuild(value):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            return tensor(value["config"]["keras_history"])
        if isinstance(value, dict) and "class_name" in value:  # another serialized object (an array, ...)
            return deserialize_keras_object(value, custom_objects)
        if isinstance(value, dict):
            return {k: rebuild(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [rebuild(v) for v in value]
        return value
    return rebuild(node.get("args", [])), _without_empty_mask(rebuild(node.get("kwargs", {})))


def _without_empty_mask(kwargs):
    """Keras records ``mask=None`` on calls of nested models; cuflow has no masking, so an empty mask is dropped."""
    return {k: v for k, v in kwargs.items() if not (k == "mask" and v is None)}


def _sort_graph(inputs, outputs, model_name):
    """The calls from ``inputs`` to ``outputs`` in topological order, and the layers ordered as Keras lists them
    (deepest first, ties in discovery order), InputLayers included.

    Raises:
        ValueError: an output needs a ``keras.Input`` that is not among ``inputs``.
    """
    fed = {id(t) for t in inputs}
    done, order = set(), [t._node for t in inputs]
    done.update(id(node) for node in order)
    for output in outputs:
        stack = [(output, False)]
        while stack:  # iterative depth-first post-order: deep models do not hit the recursion limit
            tensor, expanded = stack.pop()
            node = tensor._node
            if id(tensor) in fed or (id(node) in done and not expanded):
                continue
            if expanded:
                if id(node) not in done:
                    done.add(id(node))
                    order.append(node)
                continue
            if node is None or not node.input_tensors:
                names = [t.name for t in inputs]
                raise ValueError(f"Graph disconnected: model '{model_name}' cannot compute output {output!r}: it "
                                 f"needs input {tensor.name!r} ({tensor!r}), which is not among the model's inputs "
                                 f"{names}")
            stack.append((tensor, True))
            stack.extend((t, False) for t in reversed(node.input_tensors))
    depth = {id(node): 0 for node in order}
    for node in reversed(order):  # consumers come after producers: push each depth up to the producers
        for t in node.input_tensors:
            parent = id(t._node)
            if parent in depth:
                depth[parent] = max(depth[parent], depth[id(node)] + 1)
    layer_depth, first_seen, layers = {}, {}, []
    for position, node in enumerate(order):
        key = id(node.layer)
        if key not in first_seen:
            first_seen[key] = position
            layers.append(node.layer)
        layer_depth[key] = max(layer_depth.get(key, 0), depth[id(node)])
    layers.sort(key=lambda layer: (-layer_depth[id(layer)], first_seen[id(layer)]))
    return order, layers
