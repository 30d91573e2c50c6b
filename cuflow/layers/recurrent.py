"""Recurrent layers: the cells (SimpleRNNCell, LSTMCell, GRUCell), the ``RNN`` layer that runs a cell over the time
axis, and SimpleRNN, LSTM and GRU (an RNN around its cell, configured flat as in Keras).

The loop is written with cuflow ops, so the tape differentiates through time. The input projection
``inputs @ kernel`` does not depend on the state, so our cells compute it for all steps in one matmul before the
loop; each step then adds ``state @ recurrent_kernel``. Gate order and equations are Keras 3's (LSTM: i, f, c, o;
GRU: z, r, h), so weights copied from Keras give the same outputs.
"""
import inspect

from .. import activations, initializers, regularizers
from ..tensor import convert_to_tensor
from ..ops.array import reshape, split, stack, unstack, concat, stop_gradient, zeros, ones, cast
from ..ops.math import matmul
from ..ops.nn import dropout
from .base import Layer, InputSpec

__all__ = ["SimpleRNNCell", "LSTMCell", "GRUCell", "RNN", "SimpleRNN", "LSTM", "GRU"]


class _Cell(Layer):
    """What the three cells share: options, weights of ``gates * units`` columns, input dropout, and the split of a
    step into ``project`` (the input's part, batched over time) and ``step`` (the recurrence)."""

    _gates = 1

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"{name}: units must be a positive int, got {units!r}")
        for arg, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0 <= rate < 1:
                raise ValueError(f"{name}: {arg} must be in [0, 1), got {rate!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.dropout, self.recurrent_dropout, self.seed = float(dropout), float(recurrent_dropout), seed

    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self):
        return self.units

    def build(self, input_shape):
        width = self._gates * self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], width), self.kernel_initializer,
                                      self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, width), self.recurrent_initializer,
                                                self.recurrent_regularizer)
        self.bias = self.add_weight("bias", self._bias_shape(), self._bias_initial(),
                                    self.bias_regularizer) if self.use_bias else None

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_initial(self):
        return self.bias_initializer

    def _input_bias(self):
        return self.bias

    def project(self, inputs):
        """``inputs @ kernel`` (plus the input bias) over any leading axes: ``(..., features)`` → ``(..., gates *
        units)``."""
        lead = tuple(inputs.shape[:-1])
        out = matmul(reshape(inputs, (-1, inputs.shape[-1])), self.kernel)
        bias = self._input_bias()
        out = out if bias is None else out + bias
        return out if len(lead) == 1 else reshape(out, lead + (out.shape[-1],))

    def sequence_context(self, batch_size, training):
        """What every step of one sequence shares: the recurrent dropout mask (one per sequence, as in Keras)."""
        if not (training and self.recurrent_dropout):
            return None
        return dropout(ones((batch_size, self.units), dtype=self.dtype), self.recurrent_dropout, seed=self.seed)

    def get_initial_state(self, batch_size):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [zeros((batch_size, size), dtype=self.dtype) for size in sizes]

    def call(self, inputs, states, training=None):
        """One step, Keras's cell API: ``(output, new_states)`` for ``inputs`` of shape ``(batch, features)``."""
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        if training and self.dropout:
            inputs = dropout(inputs, self.dropout, seed=self.seed)
        return self.step(self.project(inputs), states, self.sequence_context(inputs.shape[0], training))

    def step(self, projected, states, context):
        raise NotImplementedError(f"{type(self).__name__} must define step(projected, states, context)")

    def _recurrent(self, state, context):
        """``state @ recurrent_kernel``, the state first multiplied by the recurrent dropout mask."""
        return matmul(state if context is None else state * context, self.recurrent_kernel)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer), "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "seed": self.seed}


class SimpleRNNCell(_Cell):
    """One step of a fully connected RNN: ``h = activation(x @ kernel + h_prev @ recurrent_kernel + bias)``.

    Args:
        units: the state (and output) size.
        activation: default ``'tanh'``.
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer, kernel_regularizer,
            recurrent_regularizer, bias_regularizer: the weights' options (Keras 3's defaults: glorot_uniform,
            orthogonal, zeros).
        dropout: the fraction of the inputs dropped in training.
        recurrent_dropout: the fraction of the state dropped (before the recurrent matmul) in training.
        seed: seeds the dropout masks.
    """

    def step(self, projected, states, context):
        h = self.activation(projected + self._recurrent(states[0], context))
        return h, [h]


class LSTMCell(_Cell):
    """One step of a long short-term memory network (Hochreiter & Schmidhuber, 1997), in Keras 3's form::

        z = x @ kernel + h_prev @ recurrent_kernel + bias;  i, f, g, o = split(z, 4)
        c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g);      h = sigmoid(o) * tanh(c)

    with ``recurrent_activation`` in place of sigmoid and ``activation`` of tanh. States ``[h, c]``.

    Args:
        units, activation, use_bias, initializers, regularizers, dropout, recurrent_dropout, seed: as for
            :class:`SimpleRNNCell`.
        recurrent_activation: the gates' activation (default ``'sigmoid'``).
        unit_forget_bias: start the forget gate's bias at 1 (Jozefowicz et al., 2015), as Keras does by default.
    """

    _gates = 4

    def __init__(self, units, recurrent_activation="sigmoid", unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_initial(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        init, units = self.bias_initializer, self.units

        def forget_gate_ones(shape, dtype=None):
            return concat([init((units,), dtype=dtype), ones((units,), dtype=dtype), init((2 * units,), dtype=dtype)],
                          axis=0)
        return forget_gate_ones

    def step(self, projected, states, context):
        h_prev, c_prev = states
        i, f, g, o = split(projected + self._recurrent(h_prev, context), 4, axis=-1)
        gate = self.recurrent_activation
        c = gate(f) * c_prev + gate(i) * self.activation(g)
        h = gate(o) * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": activations.serialize(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}


class GRUCell(_Cell):
    """One step of a gated recurrent unit (Cho et al., 2014), in Keras 3's form (``reset_after=True``, the cuDNN
    variant)::

        xz, xr, xh = split(x @ kernel + input_bias, 3)
        rz, rr, rh = split(h_prev @ recurrent_kernel + recurrent_bias, 3)
        z = sigmoid(xz + rz);  r = sigmoid(xr + rr);  hh = tanh(xh + r * rh);  h = z * h_prev + (1 - z) * hh

    With ``reset_after=False`` the reset gate applies before the matmul: ``hh = tanh(xh + (r * h_prev) @
    recurrent_kernel[:, 2u:])``, and there is one bias vector.

    Args:
        units, activation, use_bias, initializers, regularizers, dropout, recurrent_dropout, seed: as for
            :class:`SimpleRNNCell`.
        recurrent_activation: the gates' activation (default ``'sigmoid'``).
        reset_after: apply the reset gate after the recurrent matmul (default True); the bias then has shape
            ``(2, 3 * units)``: input bias and recurrent bias.
    """

    _gates = 3

    def __init__(self, units, recurrent_activation="sigmoid", reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self):
        return self.bias[0] if self.reset_after and self.bias is not None else self.bias

    def sequence_context(self, batch_size, training):
        """The recurrent dropout mask and the recurrent weights in the form each step uses them."""
        mask = super().sequence_context(batch_size, training)
        if self.reset_after:
            return mask, (None if self.bias is None else self.bias[1])
        return mask, self.recurrent_kernel[:, :2 * self.units], self.recurrent_kernel[:, 2 * self.units:]

    def step(self, projected, states, context):
        h_prev = states[0]
        mask = context[0]
        dropped = h_prev if mask is None else h_prev * mask
        xz, xr, xh = split(projected, 3, axis=-1)
        gate = self.recurrent_activation
        if self.reset_after:
            inner = matmul(dropped, self.recurrent_kernel)
            inner = inner if context[1] is None else inner + context[1]
            rz, rr, rh = split(inner, 3, axis=-1)
            z, r = gate(xz + rz), gate(xr + rr)
            candidate = self.activation(xh + r * rh)
        else:
            rz, rr = split(matmul(dropped, context[1]), 2, axis=-1)
            z, r = gate(xz + rz), gate(xr + rr)
            candidate = self.activation(xh + matmul(r * dropped, context[2]))
        h = z * h_prev + (1 - z) * candidate
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": activations.serialize(self.recurrent_activation),
                "reset_after": self.reset_after}


_CELLS = {cls.__name__: cls for cls in (SimpleRNNCell, LSTMCell, GRUCell)}


class RNN(Layer):
    """Runs a cell over the time axis of ``(batch, time, features)`` inputs.

    The cell is one of :class:`SimpleRNNCell`, :class:`LSTMCell`, :class:`GRUCell`, or any layer with Keras's cell
    API: ``state_size`` (an int or a list of ints) and ``call(inputs, states)`` returning ``(output, new_states)``.

    Args:
        cell: the cell.
        return_sequences: return the output of every step, ``(batch, time, units)``, instead of the last one.
        return_state: also return the final states: ``[output, *states]``.
        go_backwards: process the sequence from its end (the returned sequence is then in that reversed order,
            as in Keras).
        stateful: start each call from the previous call's final states (batches must then keep their size);
            ``reset_states()`` goes back to zeros.
        unroll: accepted for Keras compatibility; cuflow always runs the loop step by step, which gives the same
            numbers.

    Call arguments:
        inputs: ``(batch, time, features)``.
        initial_state: a tensor or a list of tensors ``(batch, state_size)`` to start from (default zeros).
        training: applies the cell's dropout.

    Example:

    >>> from cuflow import keras
    >>> import numpy as np
    >>> layer = keras.layers.RNN(keras.layers.LSTMCell(4), return_sequences=True)
    >>> layer(np.zeros((2, 5, 3))).shape
    TensorShape([2, 5, 4])
    """

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(cell, Layer) and hasattr(cell, "state_size")):
            raise TypeError(f"{type(self).__name__}: cell must be a layer with a state_size and call(inputs, states), "
                            f"got {type(cell).__name__}")
        self.cell = cell
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful, self.unroll = bool(go_backwards), bool(stateful), bool(unroll)
        self.states = None  # the carried states of a stateful layer
        self.input_spec = InputSpec(ndim=3)

    def _state_sizes(self):
        size = self.cell.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    def build(self, input_shape):
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the feature dimension of the input must be "
                             f"known, got shape {tuple(input_shape)}")
        if not self.cell.built:
            self.cell._build_for((input_shape[0], features))
        self.input_spec = InputSpec(ndim=3, axes={-1: features})

    def call(self, inputs, initial_state=None, training=None):
        batch, steps = inputs.shape[0], inputs.shape[1]
        if steps == 0:
            raise ValueError(f"{type(self).__name__} '{self.name}': the input needs at least one time step, got shape "
                             f"{tuple(inputs.shape)}")
        states = self._initial_states(batch, initial_state)
        cell = self.cell
        fast = isinstance(cell, _Cell)
        if fast:  # one dropout mask per sequence, then the input projection of every step in one matmul
            if training and cell.dropout:
                inputs = dropout(inputs, cell.dropout, noise_shape=[batch, 1, inputs.shape[2]], seed=cell.seed)
            context = cell.sequence_context(batch, training)
            inputs = cell.project(inputs)
        per_step = unstack(inputs, axis=1)
        outputs = []
        for x in (per_step[::-1] if self.go_backwards else per_step):
            if fast:
                output, states = cell.step(x, states, context)
            else:
                output, states = cell(x, states, training=training)
                states = list(states) if isinstance(states, (list, tuple)) else [states]
            if self.return_sequences:
                outputs.append(output)
        if self.return_sequences:
            output = stack(outputs, axis=1)
        if self.stateful:
            self.states = [stop_gradient(s) for s in states]
        return [output] + list(states) if self.return_state else output

    def _initial_states(self, batch, initial_state):
        what = f"{type(self).__name__} '{self.name}'"
        sizes = self._state_sizes()
        if initial_state is None and self.stateful and self.states is not None:
            if self.states[0].shape[0] != batch:
                raise ValueError(f"{what} is stateful and carries states for batches of {self.states[0].shape[0]}, "
                                 f"got a batch of {batch}; call reset_states() first")
            return list(self.states)
        if initial_state is None:
            if hasattr(self.cell, "get_initial_state"):
                return list(self.cell.get_initial_state(batch))
            return [zeros((batch, size), dtype=self.dtype) for size in sizes]
        given = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        given = [convert_to_tensor(s) for s in given]
        given = [cast(s, self.dtype) if s.dtype.is_floating and s.dtype != self.dtype else s for s in given]
        expected = [(batch, size) for size in sizes]
        if [tuple(s.shape) for s in given] != expected:
            raise ValueError(f"{what}: initial_state must be {len(sizes)} tensor(s) of shape(s) {expected}, got "
                             f"shape(s) {[tuple(s.shape) for s in given]}")
        return given

    def reset_states(self):
        """Sets a stateful layer's carried states back to zeros (the next call starts from zeros)."""
        if not self.stateful:
            raise AttributeError(f"{type(self).__name__} '{self.name}': reset_states() needs stateful=True")
        self.states = None

    reset_state = reset_states

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        units = getattr(self.cell, "output_size", self._state_sizes()[0])
        output = (batch, input_shape[1], units) if self.return_sequences else (batch, units)
        if self.return_state:
            return [output] + [(batch, size) for size in self._state_sizes()]
        return output

    def _rnn_config(self):
        return {"return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll}

    def get_config(self):
        return {**super().get_config(), "cell": {"class_name": type(self.cell).__name__,
                                                 "config": self.cell.get_config()}, **self._rnn_config()}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        entry = config.pop("cell")
        known = {**_CELLS, **(custom_objects or {})}
        if entry["class_name"] not in known:
            raise ValueError(f"RNN.from_config: unknown cell class {entry['class_name']!r}; pass it in custom_objects")
        return cls(known[entry["class_name"]].from_config(entry["config"]), **config)


_LAYER_KEYS = {"name", "trainable", "dtype", "input_shape", "batch_input_shape", "input_dim"}


class _CellRNN(RNN):
    """An RNN built around its own cell (SimpleRNN, LSTM, GRU): the cell's options are the layer's, flat in its
    config, as in Keras."""

    _cell_class = _cell_name = None

    def __init__(self, units, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, **kwargs):
        layer_options = {k: kwargs.pop(k) for k in list(kwargs) if k in _LAYER_KEYS}
        accepted = (set(inspect.signature(self._cell_class.__init__).parameters) |
                    set(inspect.signature(_Cell.__init__).parameters)) - {"self", "units", "kwargs"}
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {unknown}")
        cell_name = self._cell_name
        cell = self._cell_class(units, name=cell_name, dtype=layer_options.get("dtype"),
                                trainable=layer_options.get("trainable", True), **kwargs)
        super().__init__(cell, return_sequences, return_state, go_backwards, stateful, unroll, **layer_options)
        cell.name = f"{self.name}/{cell_name}"  # weights read 'lstm/lstm_cell/kernel:0', as in tf.keras

    def __getattr__(self, name):  # layer.units, layer.kernel_initializer, ... are the cell's, as in Keras
        cell = self.__dict__.get("cell")
        if cell is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(cell, name)

    def get_config(self):
        cell_config = {k: v for k, v in self.cell.get_config().items() if k not in ("name", "trainable", "dtype")}
        return {**Layer.get_config(self), **cell_config, **self._rnn_config()}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


class SimpleRNN(_CellRNN):
    """A fully connected RNN whose output is fed back as the next step's state (see :class:`SimpleRNNCell`).

    Args:
        units: the output and state size.
        activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer, kernel_regularizer,
            recurrent_regularizer, bias_regularizer, dropout, recurrent_dropout, seed: the cell's options.
        return_sequences, return_state, go_backwards, stateful, unroll: as for :class:`RNN`.

    Input shape ``(batch, time, features)``; output ``(batch, units)`` or ``(batch, time, units)``.
    """

    _cell_class, _cell_name = SimpleRNNCell, "simple_rnn_cell"


class LSTM(_CellRNN):
    """Long short-term memory layer (see :class:`LSTMCell` for the equations), with Keras 3's defaults: kernel
    glorot_uniform, recurrent kernel orthogonal, bias zeros with the forget gate's at 1.

    Args:
        units: the output and state size.
        activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
            unit_forget_bias, kernel_regularizer, recurrent_regularizer, bias_regularizer, dropout,
            recurrent_dropout, seed: the cell's options.
        return_sequences, return_state, go_backwards, stateful, unroll: as for :class:`RNN`; with
            ``return_state`` the layer returns ``[output, h, c]``.

    Input shape:
        ``(batch, time, features)``.

    Output shape:
        ``(batch, units)``, or ``(batch, time, units)`` with ``return_sequences``.

    Example:

    >>> from cuflow import keras
    >>> import numpy as np
    >>> output, h, c = keras.layers.LSTM(4, return_state=True)(np.zeros((2, 5, 3)))
    >>> output.shape, c.shape
    (TensorShape([2, 4]), TensorShape([2, 4]))
    """

    _cell_class, _cell_name = LSTMCell, "lstm_cell"


class GRU(_CellRNN):
    """Gated recurrent unit layer (see :class:`GRUCell`), Keras 3's defaults (``reset_after=True``).

    Args:
        units: the output and state size.
        activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
            kernel_regularizer, recurrent_regularizer, bias_regularizer, dropout, recurrent_dropout, seed,
            reset_after: the cell's options.
        return_sequences, return_state, go_backwards, stateful, unroll: as for :class:`RNN`.

    Input shape ``(batch, time, features)``; output ``(batch, units)`` or ``(batch, time, units)``.
    """

    _cell_class, _cell_name = GRUCell, "gru_cell"
