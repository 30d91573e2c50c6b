"""Shape, layout, indexing and creation ops.

Gradients of the indexing ops (``gather``, ``gather_nd``, ``__getitem__``) are scatter-adds declared as ops of their
own, whose gradients are the gathers again: the set is closed, so higher-order gradients work.
"""
import builtins

import numpy as np

from .. import dtypes, errors
from .. import devices as _device
from ..tensor import Tensor, TensorShape, constant
from .base import op, xp, array_of

__all__ = [
    "reshape", "transpose", "expand_dims", "squeeze", "concat", "stack", "unstack", "split", "tile", "gather",
    "gather_nd", "where", "cast", "one_hot", "pad", "broadcast_to", "stop_gradient", "identity", "zeros", "ones",
    "zeros_like", "ones_like", "fill", "range", "linspace", "eye", "shape", "size", "rank", "getitem",
    "scatter_nd", "reverse", "boolean_mask",
]


def _ints(values, what):
    if type(values) is TensorShape:  # a tensor's shape (gradients pass these): ints already
        return values
    if isinstance(values, Tensor):
        values = np.asarray(values).tolist()
    if isinstance(values, (int, np.integer)):
        return (int(values),)
    try:
        return tuple(int(v) for v in values)
    except TypeError:
        raise TypeError(f"{what}: expected a list of ints, got {values!r}") from None


def _axis(axis, ndim, what):
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise errors.InvalidArgumentError(f"{what}: axis {axis} is out of range for a tensor of rank {ndim}")
    return axis % ndim


# --- layout --------------------------------------------------------------------------------------------------------
@op(inputs=("tensor",))
def reshape(tensor, shape):
    """Returns ``tensor`` with a new shape (one dimension may be -1)."""
    target = _ints(shape, "reshape")
    known = 1
    for d in target:  # a Python loop: np.prod costs more than the whole reshape on these few ints
        if d != -1:
            known *= d
    if target.count(-1) > 1 or (-1 not in target and known != tensor.size) or \
            (-1 in target and (known == 0 or tensor.size % known)):
        raise errors.InvalidArgumentError(
            f"reshape: cannot reshape a tensor with {tensor.size} elements (shape {tuple(tensor.shape)}) to shape "
            f"{list(target)}")
    return tensor.reshape(target)



@reshape.gradient
def _(grad, tensor, out, shape=None):
    return reshape(grad, tensor.shape)


@op
def transpose(a, perm=None, conjugate=False):
    """Permutes the axes of ``a`` (reverses them when ``perm`` is None)."""
    if perm is None:
        return a.transpose()
    perm = _ints(perm, "transpose")
    if builtins.any(not -a.ndim <= p < a.ndim for p in perm) or \
            sorted(p % a.ndim for p in perm) != list(builtins.range(a.ndim)):
        raise errors.InvalidArgumentError(f"transpose: perm {list(perm)} is not a permutation of the {a.ndim} "
                                          f"axes of a tensor of shape {tuple(a.shape)}")
    return a.transpose(perm)


@transpose.gradient
def _(grad, a, out, perm=None, conjugate=False):
    if perm is None:
        return transpose(grad)
    return transpose(grad, np.argsort([p % len(a.shape) for p in _ints(perm, "transpose")]))


def expand_dims(input, axis, name=None):
    """Inserts a length-1 axis at ``axis`` (negative counts from the end of the result)."""
    shape = list(input.shape) if isinstance(input, Tensor) else list(np.shape(input))
    axis = int(axis)
    if not -len(shape) - 1 <= axis <= len(shape):
        raise errors.InvalidArgumentError(f"expand_dims: axis {axis} is out of range for a tensor of rank {len(shape)}")
    shape.insert(axis % (len(shape) + 1), 1)
    return reshape(input, shape)


def squeeze(input, axis=None, name=None):
    """Removes length-1 axes (only those in ``axis`` when given; each must have length 1)."""
    shape = list(input.shape) if isinstance(input, Tensor) else list(np.shape(input))
    if axis is None:
        keep = [d for d in shape if d != 1]
    else:
        axes = {_axis(a, len(shape), "squeeze") for a in _ints(axis, "squeeze")}
        for a in axes:
            if shape[a] != 1:
                raise errors.InvalidArgumentError(f"squeeze: cannot squeeze axis {a} of shape {tuple(shape)}: its "
                                                  f"length is {shape[a]}, not 1")
        keep = [d for i, d in enumerate(shape) if i not in axes]
    return reshape(input, keep)


@op(inputs=("input",))
def broadcast_to(input, shape):
    """Broadcasts ``input`` to ``shape`` (NumPy rules)."""
    target = _ints(shape, "broadcast_to")
    try:
        return xp(input).broadcast_to(input, target)
    except ValueError:
        raise errors.InvalidArgumentError(f"broadcast_to: cannot broadcast shape {tuple(input.shape)} to "
                                          f"{list(target)}") from None



@broadcast_to.gradient
def _(grad, input, out, shape=None):
    from .math import unbroadcast
    return unbroadcast(grad, input.shape)


@op(variadic=True, inputs=("values",))  # axis has no default (as in TF) but is an attribute, not an input
def concat(values, axis):
    """Joins tensors along an existing axis."""
    ndim = values[0].ndim
    if ndim == 0:
        raise errors.InvalidArgumentError("concat: cannot concatenate scalars; use cuflow.stack")
    axis = _axis(axis, ndim, "concat")
    _check_same_shapes("concat", values, skip_axis=axis)
    return xp(values[0]).concatenate(values, axis=axis)


@concat.gradient
def _(grad, values, out, axis):
    axis = int(axis) % len(values[0].shape)
    return split(grad, [v.shape[axis] for v in values], axis=axis)


@op(variadic=True)
def stack(values, axis=0):
    """Joins tensors of the same shape along a new axis."""
    _check_same_shapes("stack", values)
    axis = _axis(axis, values[0].ndim + 1, "stack")
    return xp(values[0]).stack(values, axis=axis)


@stack.gradient
def _(grad, values, out, axis=0):
    return unstack(grad, axis=axis)


def _check_same_shapes(what, values, skip_axis=None):
    first = tuple(values[0].shape)
    for i, v in enumerate(values[1:], 1):
        shape = tuple(v.shape)
        if len(shape) != len(first) or any(a != b for k, (a, b) in enumerate(zip(first, shape)) if k != skip_axis):
            raise errors.InvalidArgumentError(f"{what}: values[0] has shape {first} but values[{i}] has shape {shape}")


@op(inputs=("value",), n_outputs=None)
def split(value, num_or_size_splits, axis=0, num=None):
    """Splits ``value`` along ``axis`` into equal parts (an int) or parts of the given sizes (a list)."""
    axis = _axis(axis, value.ndim, "split")
    length = value.shape[axis]
    if isinstance(num_or_size_splits, (int, np.integer)):
        parts = int(num_or_size_splits)
        if parts <= 0 or length % parts:
            raise errors.InvalidArgumentError(f"split: dimension {axis} of length {length} cannot be split into "
                                              f"{parts} equal parts")
        sizes = [length // parts] * parts
    else:
        sizes = list(_ints(num_or_size_splits, "split"))
        if sizes.count(-1) == 1:
            sizes[sizes.index(-1)] = length - (builtins.sum(sizes) + 1)
        if builtins.sum(sizes) != length or builtins.any(s < 0 for s in sizes):
            raise errors.InvalidArgumentError(f"split: sizes {sizes} do not add up to dimension {axis} of length "
                                              f"{length}")
    return xp(value).split(value, np.cumsum(sizes)[:-1].tolist(), axis=axis)



@split.gradient
def _(grads, value, outs, num_or_size_splits=None, axis=0, num=None):
    return concat(grads, axis=axis)


@op(n_outputs=None)
def unstack(value, num=None, axis=0):
    """Splits ``value`` into the list of its slices along ``axis``."""
    axis = _axis(axis, value.ndim, "unstack")
    m = xp(value)
    return [m.take(value, i, axis=axis) for i in builtins.range(value.shape[axis])]


@unstack.gradient
def _(grads, value, outs, num=None, axis=0):
    return stack(grads, axis=axis)


@op(inputs=("input",))
def tile(input, multiples):
    """Repeats ``input`` ``multiples[i]`` times along each axis ``i``."""
    reps = _ints(multiples, "tile")
    if len(reps) != input.ndim:
        raise errors.InvalidArgumentError(f"tile: multiples has length {len(reps)} but input has rank {input.ndim}")
    return xp(input).tile(input, reps)



@tile.gradient
def _(grad, input, out, multiples=None):
    from .math import reduce_sum
    reps = _ints(multiples, "tile")
    split_shape = []
    for r, d in zip(reps, input.shape):
        split_shape += [r, d]
    summed = reduce_sum(reshape(grad, split_shape), axis=list(builtins.range(0, 2 * len(reps), 2)))
    return reshape(summed, input.shape)


@op(inputs=("tensor",))
def reverse(tensor, axis):
    """Reverses ``tensor`` along the given axes."""
    axes = tuple(_axis(a, tensor.ndim, "reverse") for a in _ints(axis, "reverse"))
    return xp(tensor).flip(tensor, axes)



@reverse.gradient
def _(grad, tensor, out, axis=None):
    return reverse(grad, axis)


# --- indexing ------------------------------------------------------------------------------------------------------
def _indices(indices, params, what):
    idx = array_of(indices, like=params)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{what}: indices must be integers, got dtype {idx.dtype}")
    return idx


@op(inputs=("params",))
def gather(params, indices, axis=None, batch_dims=0, validate_indices=None):
    """Gathers slices of ``params`` along ``axis`` (default 0) at ``indices``.

    Raises:
        cuflow.errors.InvalidArgumentError: an index is outside ``[0, params.shape[axis])``.
    """
    if batch_dims:
        raise NotImplementedError("gather: batch_dims != 0 is not supported yet")
    axis = _axis(0 if axis is None else axis, params.ndim, "gather")
    idx = _indices(indices, params, "gather")
    m = xp(params)
    length = params.shape[axis]
    if idx.size and (builtins.bool((idx < 0).any()) or builtins.bool((idx >= length).any())):
        bad = int(m.asarray(idx).ravel()[((idx < 0) | (idx >= length)).ravel()][0])
        raise errors.InvalidArgumentError(f"gather: index {bad} is out of range [0, {length}) for axis {axis} of "
                                          f"params with shape {tuple(params.shape)}")
    return m.take(params, idx, axis=axis)


@gather.gradient
def _(grad, params, out, indices, axis=None, batch_dims=0, validate_indices=None):
    return _gather_grad(grad, indices=indices, params_shape=tuple(params.shape), axis=0 if axis is None else axis)


@op(inputs=("grad",))
def _gather_grad(grad, indices, params_shape, axis):
    m = xp(grad)
    axis = int(axis) % len(params_shape)
    idx = array_of(indices, like=grad)
    out = m.zeros(params_shape, dtype=grad.dtype)
    moved = m.moveaxis(out, axis, 0)
    g = grad.reshape(grad.shape[:axis] + (idx.size,) + grad.shape[axis + idx.ndim:])
    m.add.at(moved, idx.ravel(), m.moveaxis(g, axis, 0))
    return out


@_gather_grad.gradient
def _(gg, grad, out, indices, params_shape, axis):
    return gather(gg, indices, axis=axis)


@op(inputs=("params",))
def gather_nd(params, indices, batch_dims=0):
    """Gathers slices of ``params`` at the index tuples in the last axis of ``indices``."""
    if batch_dims:
        raise NotImplementedError("gather_nd: batch_dims != 0 is not supported yet")
    idx = _indices(indices, params, "gather_nd")
    _check_nd_indices("gather_nd", idx, tuple(params.shape))
    return params[tuple(idx[..., i] for i in builtins.range(idx.shape[-1]))]


@gather_nd.gradient
def _(grad, params, out, indices, batch_dims=0):
    return scatter_nd(indices, grad, tuple(params.shape))


def _check_nd_indices(what, idx, shape):
    """Raises unless every index tuple (the last axis of ``idx``) lies inside ``shape``."""
    depth = idx.shape[-1]
    if depth > len(shape):
        raise errors.InvalidArgumentError(f"{what}: index depth {depth} exceeds the rank of shape {shape}")
    bounds = xp(idx).asarray(shape[:depth])
    if idx.size and (builtins.bool((idx < 0).any()) or builtins.bool((idx >= bounds).any())):
        raise errors.InvalidArgumentError(f"{what}: indices out of range for shape {shape}")


@op(inputs=("updates",))
def scatter_nd(indices, updates, shape):
    """A tensor of ``shape`` with ``updates`` added at the index tuples of ``indices`` (zeros elsewhere)."""
    m = xp(updates)
    idx = _indices(indices, updates, "scatter_nd")
    shape = _ints(shape, "scatter_nd")
    _check_nd_indices("scatter_nd", idx, shape)  # NumPy would name no op; CuPy would write out of bounds
    out = m.zeros(shape, dtype=updates.dtype)
    m.add.at(out, tuple(idx[..., i] for i in builtins.range(idx.shape[-1])), updates)
    return out


@scatter_nd.gradient
def _(grad, updates, out, indices, shape):
    return gather_nd(grad, indices)


def _key_arrays(key, like):
    """Turns the Tensors inside an indexing key into arrays on ``like``'s device."""
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    for k in key:
        if isinstance(k, Tensor):
            k = array_of(k, like=like)
            if k.ndim == 0 and k.dtype.kind in "iu":
                k = int(k)
        elif isinstance(k, (list, np.ndarray)):
            k = array_of(k, like=like)
        out.append(k)
    return tuple(out)


def _axes_used(k):
    """How many axes of the indexed array one key entry consumes."""
    if k is None or k is Ellipsis or isinstance(k, builtins.bool):
        return 0
    return k.ndim if getattr(k, "dtype", None) is not None and k.dtype.kind == "b" else 1


def _check_int_arrays(index, shape):
    """Raises IndexError for an out-of-range integer-array entry: CuPy wraps those around where NumPy raises."""
    axis = 0
    for i, k in enumerate(index):
        if k is Ellipsis:
            axis = len(shape) - builtins.sum(_axes_used(rest) for rest in index[i + 1:])
            continue
        if getattr(k, "ndim", 0) and k.dtype.kind in "iu" and k.size and axis < len(shape):
            n = shape[axis]
            if builtins.bool((k < -n).any()) or builtins.bool((k >= n).any()):
                raise IndexError(f"an integer-array index is out of bounds for axis {axis} with size {n}")
        axis += _axes_used(k)


@op(inputs=("tensor",))
def getitem(tensor, key):
    """``tensor[key]``: ints, slices, ``...``, ``None``, boolean masks and integer arrays, as in NumPy."""
    index = _key_arrays(key, tensor)
    try:
        if type(tensor) is not np.ndarray:
            _check_int_arrays(index, tensor.shape)
        return tensor[index]
    except IndexError as e:
        raise IndexError(f"index {key!r} is out of range for a tensor of shape {tuple(tensor.shape)}: {e}") from None


@getitem.gradient
def _(grad, tensor, out, key):
    return _getitem_grad(grad, key=key, shape=tuple(tensor.shape))


@op(inputs=("grad",))
def _getitem_grad(grad, key, shape):
    m = xp(grad)
    out = m.zeros(shape, dtype=grad.dtype)
    m.add.at(out, _key_arrays(key, grad), grad)
    return out


@_getitem_grad.gradient
def _(gg, grad, out, key, shape):
    return getitem(gg, key)


def boolean_mask(tensor, mask, axis=None, name=None):
    """The elements (or slices) of ``tensor`` where ``mask`` is True."""
    axis = 0 if axis is None else int(axis)
    mask_shape, tensor_shape = tuple(np.shape(mask)), tuple(np.shape(tensor))
    if tensor_shape[axis:axis + len(mask_shape)] != mask_shape:
        raise errors.InvalidArgumentError(f"boolean_mask: mask of shape {mask_shape} does not match tensor of shape "
                                          f"{tensor_shape} from axis {axis}")
    lead = (builtins.slice(None),) * axis
    return getitem(tensor, lead + (mask if isinstance(mask, Tensor) else np.asarray(mask, dtype=bool),))


@op(inputs=("x", "y"))
def where(condition, x=None, y=None):
    """``x`` where ``condition`` is True, else ``y`` (broadcasting). With only ``condition``: the indices of its True
    elements, shape ``(count, rank)``, int64."""
    if x is None and y is None:
        cond = array_of(condition)
        return xp(cond).argwhere(cond).astype(np.int64)
    if x is None or y is None:
        raise ValueError("where: x and y must both be given or both be None")
    cond = array_of(condition, like=x if hasattr(x, "dtype") else y)
    if cond.dtype.kind != "b":
        raise TypeError(f"where: condition must be bool, got dtype {cond.dtype}")
    return xp(x, y).where(cond, x, y)


@where.gradient
def _(grad, x, y, out, condition):
    from .math import unbroadcast
    from ..ops.base import shape_of
    zero = zeros_like(grad)
    gx = unbroadcast(where(condition, grad, zero), shape_of(x)) if isinstance(x, Tensor) else None
    gy = unbroadcast(where(condition, zero, grad), shape_of(y)) if isinstance(y, Tensor) else None
    return gx, gy


# --- dtype and gradient control ------------------------------------------------------------------------------------
@op(inputs=("x",))
def cast(x, dtype):
    """Converts ``x`` to ``dtype``. Float to int truncates toward zero, as in TensorFlow."""
    target = dtypes.as_dtype(dtype)
    if _device.device_of(x).is_gpu and target == dtypes.string:
        raise TypeError("cast: string tensors live on the CPU only")
    return x.astype(target.numpy_dtype, copy=False)



@cast.gradient
def _(grad, x, out, dtype=None):
    if x.dtype.is_floating and dtypes.as_dtype(dtype).is_floating:
        return cast(grad, x.dtype)
    return None


@op
def identity(input):
    """Returns a tensor with the same value (a new tensor object; useful to mark a value in a tape)."""
    return input.copy()


@identity.gradient
def _(grad, input, out):
    return grad


def stop_gradient(input, name=None):
    """The same value, but no gradient flows through it."""
    data = input._data if isinstance(input, Tensor) else constant(input)._data
    return Tensor(data)


# --- creation ------------------------------------------------------------------------------------------------------
def _current_xp():
    if _device.current_device().is_gpu:
        from ..kernels import cuda
        return cuda.cupy()
    return np


def _created(array):
    dev = _device.current_device()
    return Tensor(_device.to_device(array, dev) if dev.is_gpu else array)


def zeros(shape, dtype=dtypes.float32, name=None):
    """A tensor of zeros on the current device."""
    return Tensor(_current_xp().zeros(_ints(shape, "zeros"), dtype=dtypes.numpy_dtype(dtype)))


def ones(shape, dtype=dtypes.float32, name=None):
    """A tensor of ones on the current device."""
    return Tensor(_current_xp().ones(_ints(shape, "ones"), dtype=dtypes.numpy_dtype(dtype)))


def fill(dims, value, name=None):
    """A tensor of shape ``dims`` filled with ``value`` (dtype inferred from ``value``)."""
    return constant(value, shape=_ints(dims, "fill"))


def _like(input, dtype, maker):
    data = input._data if isinstance(input, Tensor) else constant(input)._data
    return Tensor(maker(xp(data), data.shape, dtypes.numpy_dtype(dtype) if dtype is not None else data.dtype))


def zeros_like(input, dtype=None, name=None):
    """Zeros with ``input``'s shape, dtype (unless given) and device."""
    return _like(input, dtype, lambda m, shape, dt: m.zeros(shape, dtype=dt))


def ones_like(input, dtype=None, name=None):
    """Ones with ``input``'s shape, dtype (unless given) and device."""
    return _like(input, dtype, lambda m, shape, dt: m.ones(shape, dtype=dt))


def range(start, limit=None, delta=1, dtype=None, name=None):  # noqa: A001 - TensorFlow's name
    """``[start, start + delta, ...)`` up to ``limit`` (like Python's range; float arguments give float32)."""
    if limit is None:
        start, limit = 0, start
    values = [np.asarray(v).item() if isinstance(v, Tensor) else v for v in (start, limit, delta)]
    if dtype is None:
        dtype = dtypes.float32 if builtins.any(isinstance(v, float) for v in values) else dtypes.int32
    return _created(np.arange(*values, dtype=dtypes.numpy_dtype(dtype)))


def linspace(start, stop, num, name=None, axis=0):
    """``num`` evenly spaced values from ``start`` to ``stop`` inclusive (float32 unless inputs are float64)."""
    dtype = np.float64 if builtins.any(getattr(v, "dtype", None) == np.float64 for v in (start, stop)) else np.float32
    return _created(np.linspace(float(start), float(stop), int(num), dtype=dtype))


def eye(num_rows, num_columns=None, batch_shape=None, dtype=dtypes.float32, name=None):
    """An identity matrix (or a batch of them)."""
    matrix = np.eye(num_rows, num_columns, dtype=dtypes.numpy_dtype(dtype))
    if batch_shape is not None:
        matrix = np.broadcast_to(matrix, tuple(batch_shape) + matrix.shape).copy()
    return _created(matrix)


def one_hot(indices, depth, on_value=None, off_value=None, axis=-1, dtype=None, name=None):
    """One-hot encodes integer ``indices`` into a new axis of length ``depth``; out-of-range indices give all
    ``off_value``, as in TensorFlow."""
    dtype = dtypes.as_dtype(dtype or (on_value.dtype if isinstance(on_value, Tensor) else dtypes.float32))
    idx = indices._data if isinstance(indices, Tensor) else _created(np.asarray(indices))._data
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be integers, got dtype {idx.dtype}")
    m = xp(idx)
    hot = m.arange(int(depth)) == idx[..., None]
    on = 1 if on_value is None else on_value
    off = 0 if off_value is None else off_value
    out = m.where(hot, m.asarray(on, dtype=dtype.numpy_dtype), m.asarray(off, dtype=dtype.numpy_dtype))
    if axis != -1:
        out = m.moveaxis(out, -1, axis)
    return Tensor(out)


@op(inputs=("tensor",))
def pad(tensor, paddings, mode="CONSTANT", constant_values=0):
    """Pads ``tensor`` with ``paddings[i] = [before, after]`` along each axis ``i`` ('CONSTANT' mode)."""
    pads = np.asarray(np.asarray(paddings) if not isinstance(paddings, Tensor) else np.asarray(paddings),
                      dtype=np.int64)
    if pads.shape != (tensor.ndim, 2) or (pads < 0).any():
        raise errors.InvalidArgumentError(f"pad: paddings must be non-negative with shape ({tensor.ndim}, 2) for a "
                                          f"tensor of shape {tuple(tensor.shape)}, got {pads.tolist()}")
    if str(mode).upper() != "CONSTANT":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported yet; use 'CONSTANT'")
    return xp(tensor).pad(tensor, [tuple(p) for p in pads.tolist()], mode="constant",
                          constant_values=constant_values)



@pad.gradient
def _(grad, tensor, out, paddings=None, mode="CONSTANT", constant_values=0):
    pads = np.asarray(paddings).tolist()
    key = tuple(builtins.slice(before, before + d) for (before, _), d in zip(pads, tensor.shape))
    return getitem(grad, key)


# --- facts about tensors -------------------------------------------------------------------------------------------
def shape(input, out_type=dtypes.int32, name=None):
    """The shape of ``input`` as an int32 tensor on the CPU."""
    return Tensor(np.asarray(np.shape(input) if not isinstance(input, Tensor) else input.shape,
                             dtype=dtypes.numpy_dtype(out_type)))


def size(input, out_type=dtypes.int32, name=None):
    """The number of elements of ``input``."""
    return Tensor(np.asarray(int(np.prod(shape(input).numpy())), dtype=dtypes.numpy_dtype(out_type)))


def rank(input, name=None):
    """The number of axes of ``input``."""
    return Tensor(np.asarray(len(input.shape) if isinstance(input, Tensor) else np.ndim(input), dtype=np.int32))
