"""How an op is declared, and the one place every op call goes through.

An op is a forward function on raw arrays plus, right next to it, a gradient written with cuflow ops::

    @op
    def tanh(x):
        return xp(x).tanh(x)

    @tanh.gradient
    def _(grad, x, out):
        return grad * (1 - out * out)

Parameters without a default are the op's tensor *inputs*; the rest are *attributes* (``axis``, ``keepdims``...)
and reach both functions as keywords. ``Op.__call__`` converts the inputs to arrays (Python numbers and NumPy data
go to the inputs' device and dtype), checks that tensors share a device (and, for ops declared ``same_dtype``, a
dtype), runs the forward, wraps the result and, only when a tape is active, records the call. That single choke
point is what ``GradientTape`` (and later ``cuflow.function``) hooks into.

The gradient function is called as ``gradient(grad, *inputs, out, **attrs)`` and returns one gradient per input
(``None`` where there is none). Inputs arrive as Tensors (or the Python number the user passed).
"""
import builtins
import inspect
import operator

import numpy as np

from .. import dtypes, errors, tape as _tape
from .. import devices as _device
from ..kernels import backend, xp
from ..tensor import Tensor, Variable, constant

__all__ = ["Op", "op", "xp", "backend", "array_of", "shape_of"]

_SCALARS = (builtins.bool, int, float)
_TENSOR_TYPES = (Tensor, Variable)
_EMPTY = {}


class Op:
    """A differentiable operation: see the module docstring."""

    def __init__(self, forward, name=None, inputs=None, variadic=False, same_dtype=True, n_outputs=1):
        self.forward = forward
        self.name = name or forward.__name__
        self.grad_fn = None
        self.grad_wants_needs = False
        self.variadic = variadic
        self.same_dtype = same_dtype
        self.n_outputs = n_outputs  # 1: returns one array; None: a list/tuple of arrays (split, unstack)
        params = [p for p in inspect.signature(forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        self._params = [p.name for p in params if p.kind != p.KEYWORD_ONLY]
        if inputs is None and variadic:
            inputs = self._params[:1]  # the list of tensors; everything after it is an attribute
        if inputs is None:
            inputs = [p.name for p in params if p.default is p.empty and p.kind != p.KEYWORD_ONLY]
        self.input_names = tuple(inputs)
        self.n_inputs = len(self.input_names)
        self._leading_inputs = tuple(self._params[:self.n_inputs]) == self.input_names
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        self._default_values = tuple(self._defaults.values())
        self._plans = {}  # (number of positional arguments, *keywords) -> how _bind picks inputs and attributes
        self._known = {p.name for p in params}
        self.__doc__ = forward.__doc__
        self.__name__ = self.name
        self.__wrapped__ = forward

    def gradient(self, fn):
        """Decorator: registers ``fn(grad, *inputs, out, **attrs)`` as this op's gradient.

        A gradient that declares a ``needs`` keyword receives a tuple of bools, one per input, telling which inputs
        the tape wants a gradient for; it may return None for the others and skip their (costly) computation, as
        matmul and conv2d do for their data input.
        """
        self.grad_fn = fn
        self.grad_wants_needs = "needs" in inspect.signature(fn).parameters
        return fn

    def __repr__(self):
        return f"<cuflow op {self.name}>"

    # --- the call -----------------------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if kwargs or len(args) != self.n_inputs:
            inputs, attrs = self._bind(args, kwargs)
        else:
            inputs, attrs = args, _EMPTY
        if self.variadic:
            inputs = tuple(inputs[0])
            if not inputs:
                raise ValueError(f"{self.name}: expected a non-empty list of tensors")
        arrays = None
        if len(inputs) == 2:  # binary ops on two tensors of one array type and dtype: checked inline, no call
            x, y = inputs
            if type(x) in _TENSOR_TYPES and type(y) in _TENSOR_TYPES:
                dx, dy = x._data, y._data
                if type(dx) is np.ndarray and type(dy) is np.ndarray and (dx.dtype == dy.dtype or not self.same_dtype):
                    arrays = (dx, dy)
            elif type(y) is float and type(x) in _TENSOR_TYPES and x._data.dtype.kind == "f" and self.same_dtype:
                arrays = (x._data, y)  # tensor * 2.0: the Python float rides along as a kernel argument
        elif len(inputs) == 1 and type(inputs[0]) in _TENSOR_TYPES:
            arrays = (inputs[0]._data,)
        if arrays is None:
            arrays = self._same_place_arrays(inputs)
        if arrays is None:
            inputs, arrays = self._convert(tuple(inputs))
        try:
            if self.variadic:
                result = self.forward(arrays, **attrs)
            elif self._leading_inputs:
                result = self.forward(*arrays, **attrs)
            else:  # inputs are not the first parameters (where(condition, x, y)): pass them by name
                result = self.forward(**dict(zip(self.input_names, arrays)), **attrs)
        except ValueError as error:  # costs nothing unless raised
            self._explain_broadcast(error, arrays)
            raise
        if self.n_outputs == 1:
            if type(result) is not np.ndarray and isinstance(result, np.generic):
                result = np.asarray(result)  # NumPy reductions return scalars; a Tensor always holds an array
            outputs = Tensor(result)
        else:
            outputs = [Tensor(np.asarray(r) if isinstance(r, np.generic) else r) for r in result]
        if _tape.active:
            _tape.record(self, inputs, outputs, attrs)
        return outputs

    def _explain_broadcast(self, error, arrays):
        """NumPy's and CuPy's broadcasting errors name neither the op nor the inputs: say both."""
        if isinstance(error, errors.OpError) or self.variadic or not self.same_dtype or len(arrays) < 2:
            return
        shapes = [shape_of(a) for a in arrays]
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            described = ", ".join(f"{name} with shape {shape}" for name, shape in zip(self.input_names, shapes))
            raise errors.InvalidArgumentError(f"{self.name}: {described} do not broadcast") from None

    def _bind(self, args, kwargs):
        """``(inputs, attrs)`` for a call with these arguments: the inputs in declaration order (defaults filled
        in), the attributes as a dict of every attribute (defaults included). How to pick them out of the call's
        arguments depends only on how many were positional and which keywords were given, so that is worked out
        (and checked) once per such call signature and reused: ops called with keywords (``reduce_sum(x,
        axis=-1)``) are on every training step's path."""
        key = (len(args), *kwargs)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(len(args), tuple(kwargs))
        pick_inputs, attr_names, pick_attrs = plan
        pool = (*args, *kwargs.values(), *self._default_values)
        return pick_inputs(pool), dict(zip(attr_names, pick_attrs(pool)))

    def _plan(self, n_args, keywords):
        """For calls with ``n_args`` positional arguments and these ``keywords``: where each input and attribute
        comes from in ``(*args, *kwargs.values(), *defaults)``. Raises TypeError (as Python would) for a call
        that does not fit the op's signature."""
        if n_args > len(self._params):
            raise TypeError(f"{self.name}() takes {len(self._params)} positional arguments but {n_args} were given")
        where = {name: i for i, name in enumerate(self._params[:n_args])}
        for offset, key in enumerate(keywords):
            if key == "name":  # TensorFlow's op name: accepted and ignored
                continue
            if key not in self._known:
                raise TypeError(f"{self.name}() got an unexpected keyword argument {key!r}")
            if key in where:
                raise TypeError(f"{self.name}() got multiple values for argument {key!r}")
            where[key] = n_args + offset
        missing = [n for n in self.input_names if n not in where and n not in self._defaults]
        if missing:
            raise TypeError(f"{self.name}() missing required argument(s): {', '.join(missing)}")
        first_default = n_args + len(keywords)
        for offset, name in enumerate(self._defaults):
            where.setdefault(name, first_default + offset)
        attr_names = tuple(name for name in where if name not in self.input_names)
        return (_picker([where[n] for n in self.input_names]), attr_names,
                _picker([where[n] for n in attr_names]))

    def _same_place_arrays(self, inputs):
        """The common case, kept cheap: every input a Tensor with an array of one type (and dtype, for
        ``same_dtype`` ops) on one device. Returns their arrays, or None to take the general path."""
        arrays = []
        first = None
        scalar = None
        for value in inputs:
            kind = type(value)
            if kind is float or kind is int:  # Python numbers ride along as kernel arguments (no copy)
                if not self.same_dtype:
                    return None
                scalar = kind
                arrays.append(value)
                continue
            if value is None:  # an optional input left out (fused_matmul's residual)
                arrays.append(None)
                continue
            if kind not in _TENSOR_TYPES:
                return None
            data = value._data
            if first is None:
                first = data
            elif type(data) is not type(first) or (self.same_dtype and data.dtype != first.dtype) or \
                    (type(data) is not np.ndarray and data.device != first.device):
                return None
            arrays.append(data)
        if scalar is not None and (first is None or first.dtype.kind not in ("f" if scalar is float else "fiu")):
            return None  # no tensor to follow, or a float meeting an integer tensor: the general path decides
        return arrays

    def _convert(self, inputs):
        """Returns (inputs as Tensors or Python scalars, their arrays), checking device and dtype agreement."""
        ref, ref_index = None, 0
        for ref_index, value in enumerate(inputs):
            if isinstance(value, Tensor):
                ref = value
                break
        if ref is None:
            # No tensor among the inputs: the first array-like value (else a Python float, else the first value)
            # becomes a constant on the current device and the others follow its dtype, as when a tensor is given.
            candidates = [i for i, v in enumerate(inputs) if v is not None and type(v) not in _SCALARS] or \
                [i for i, v in enumerate(inputs) if type(v) is float] or \
                [i for i, v in enumerate(inputs) if v is not None]
            if not candidates:
                return inputs, list(inputs)
            ref_index = candidates[0]
            ref = constant(inputs[ref_index])
            inputs = inputs[:ref_index] + (ref,) + inputs[ref_index + 1:]
        ref_data = ref._data
        ref_type = type(ref_data)
        converted = []
        arrays = []
        for index, value in enumerate(inputs):
            if isinstance(value, Tensor):
                data = value._data
                if type(data) is not ref_type or (ref_type is not np.ndarray and data.device != ref_data.device):
                    pairs = [(self._input_name(i), v._data) for i, v in enumerate(inputs) if isinstance(v, Tensor)]
                    _device.common_device(self.name, [n for n, _ in pairs], [a for _, a in pairs])
                if self.same_dtype and data.dtype != ref_data.dtype:
                    raise errors.InvalidArgumentError(
                        f"{self.name}: {self._input_name(index)} has dtype {value.dtype.name} but "
                        f"{self._input_name(ref_index)} has dtype {ref.dtype.name}; cast one with "
                        "cuflow.cast")
            elif value is None:
                data = None
            elif type(value) in _SCALARS and self.same_dtype:
                _check_scalar(self.name, self._input_name(index), value, ref.dtype)
                # a whole float meeting an integer tensor becomes an int, as TF converts 2.0 to int32
                data = int(value) if type(value) is float and not ref.dtype.is_floating else value
            else:
                if isinstance(value, (str, bytes)) and ref.dtype != dtypes.string:
                    raise TypeError(f"{self.name}: {self._input_name(index)} is the string {value!r}, which cannot "
                                    f"be combined with a {ref.dtype.name} tensor")
                value = constant(value, dtype=ref.dtype if self.same_dtype else None)
                value = Tensor(_device.to_device(value._data, _device.device_of(ref_data)))
                data = value._data
            converted.append(value)
            arrays.append(data)
        return converted, arrays

    def _input_name(self, index):
        if self.variadic:
            return f"{self.input_names[0]}[{index}]"
        return self.input_names[index] if index < len(self.input_names) else f"input {index}"


def _picker(indices):
    """``pool -> tuple(pool[i] for i in indices)``, at C speed (``itemgetter``; it alone returns a bare item for
    one index)."""
    if len(indices) == 1:
        index = indices[0]
        return lambda pool: (pool[index],)
    if not indices:
        return lambda pool: ()
    return operator.itemgetter(*indices)


def _check_scalar(op_name, arg, value, dtype):
    if dtype.is_floating:
        return
    if dtype.is_integer and isinstance(value, float) and not value.is_integer():
        raise TypeError(f"{op_name}: {arg}={value!r} cannot be converted to {dtype.name} to match the other "
                        f"input; cast the tensor to a float dtype first")
    if dtype == dtypes.string:
        raise TypeError(f"{op_name}: {arg}={value!r} cannot be combined with a string tensor")


def op(fn=None, **options):
    """Declares an op: ``@op`` or ``@op(inputs=(...), same_dtype=False, variadic=True, n_outputs=None)``."""
    if fn is None:
        return lambda f: Op(f, **options)
    return Op(fn, **options)


def array_of(value, like=None, dtype=None):
    """The raw array behind ``value`` (a Tensor, NumPy array, list or number) on ``like``'s device.

    Used by forwards for non-differentiable tensor arguments (indices, conditions, shapes). A Tensor on another
    device than ``like`` raises :class:`cuflow.errors.DeviceMismatchError`.
    """
    if isinstance(value, Tensor):
        data = value._data
        if like is not None:
            _device.common_device("op", ["input", "argument"], [like, data])
    elif like is not None and type(value) is type(like) and type(like) is not np.ndarray:
        data = value  # a raw device array already (CuPy refuses np.asarray on it)
        _device.common_device("op", ["input", "argument"], [like, data])
    else:
        data = np.asarray(value, dtype=None if dtype is None else dtypes.numpy_dtype(dtype))
        if like is not None and type(like) is not np.ndarray:
            data = _device.to_device(data, _device.device_of(like))
    if dtype is not None and data.dtype != dtypes.numpy_dtype(dtype):
        data = data.astype(dtypes.numpy_dtype(dtype))
    return data


def shape_of(value):
    """The shape of a Tensor, an array or a Python number (``()``)."""
    shape = getattr(value, "shape", None)
    return () if shape is None else tuple(shape)
