"""Convolution and pooling ops (``tf.nn.conv2d``, ``max_pool2d``...), on the primitives in ``cuflow.kernels``.

Where a gradient needs a new primitive, that primitive is an op of its own whose gradient is again an op here, so the
set is closed and higher-order gradients work: conv2d <-> conv2d_backprop_input <-> conv2d_backprop_filter,
avg_pool2d <-> its backward, max_pool2d -> its backward <-> "select at the first maximum".

Layouts follow TensorFlow: images are NHWC (``data_format='NCHW'`` transposes around the NHWC primitives), filters
are HWIO ``(KH, KW, in_channels, out_channels)``; ``padding`` is 'SAME', 'VALID' or an explicit list of
``[before, after]`` pairs, one per axis of the input.
"""
import builtins

import numpy as np

from .. import errors
from ..tensor import Tensor, convert_to_tensor
from .base import op, xp, backend
from .array import _ints, expand_dims, squeeze
from .math import FUSED_ACTIVATIONS, fused_activation_grad, reduce_sum, unbroadcast

__all__ = [
    "conv1d", "fused_conv1d", "conv2d", "fused_conv2d", "conv2d_backprop_input", "conv2d_backprop_filter",
    "conv2d_transpose", "max_pool", "max_pool1d", "max_pool2d", "avg_pool", "avg_pool1d", "avg_pool2d",
]


def _check_format(op_name, data_format):
    if data_format not in ("NHWC", "NCHW"):
        raise errors.InvalidArgumentError(f"{op_name}: data_format must be 'NHWC' or 'NCHW', got {data_format!r}")


def _to_nhwc(a, data_format):
    return a if data_format == "NHWC" else xp(a).ascontiguousarray(a.transpose(0, 2, 3, 1))


def _from_nhwc(a, data_format):
    return a if data_format == "NHWC" else xp(a).ascontiguousarray(a.transpose(0, 3, 1, 2))


def _nhwc_shape(op_name, arg, shape, data_format):
    shape = _ints(shape, op_name)
    if len(shape) != 4:
        raise errors.InvalidArgumentError(f"{op_name}: {arg} must have 4 entries ({data_format}), got {list(shape)}")
    return shape if data_format == "NHWC" else (shape[0], shape[2], shape[3], shape[1])


def _check_rank(op_name, arg, shape, rank, layout):
    if len(shape) != rank:
        raise errors.InvalidArgumentError(f"{op_name}: {arg} must have rank {rank} ({layout}), got shape "
                                          f"{tuple(shape)}")


def _hw(op_name, arg, value, data_format):
    """``(h, w)`` from TensorFlow's forms: an int, or a list of 1, 2 or 4 ints (4: batch and channel entries 1)."""
    if isinstance(value, Tensor):
        value = np.asarray(value).tolist()
    try:
        values = (int(value),) if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise errors.InvalidArgumentError(f"{op_name}: {arg} must be an int or a list of 1, 2 or 4 ints, got "
                                          f"{value!r}") from None
    if len(values) == 4:
        outer = (values[0], values[3]) if data_format == "NHWC" else values[:2]
        if outer != (1, 1):
            raise errors.InvalidArgumentError(f"{op_name}: {arg} {list(values)} must be 1 in the batch and channel "
                                              f"dimensions ({data_format})")
        values = values[1:3] if data_format == "NHWC" else values[2:]
    if len(values) not in (1, 2) or builtins.min(values) < 1:
        raise errors.InvalidArgumentError(f"{op_name}: {arg} must be a positive int or a list of 1, 2 or 4 positive "
                                          f"ints, got {value!r}")
    return (values[0], values[0]) if len(values) == 1 else tuple(values)


def _padding(op_name, padding, in_hw, window_hw, strides, data_format):
    """``((top, bottom), (left, right))`` for 'SAME', 'VALID' or an explicit list of 4 pairs."""
    if isinstance(padding, (str, bytes)):
        mode = padding.decode() if isinstance(padding, bytes) else padding
        if mode.upper() == "VALID":
            return ((0, 0), (0, 0))
        if mode.upper() == "SAME":  # TensorFlow's rule: out = ceil(in / stride), the odd pad goes after
            pads = []
            for size, window, stride in zip(in_hw, window_hw, strides):
                total = builtins.max((-(-size // stride) - 1) * stride + window - size, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
    else:
        try:
            pairs = np.asarray(padding, dtype=np.int64)
        except (TypeError, ValueError):
            pairs = None
        if pairs is not None and pairs.shape == (4, 2) and (pairs >= 0).all():
            spatial = pairs[1:3] if data_format == "NHWC" else pairs[2:]
            outer = pairs[[0, 3]] if data_format == "NHWC" else pairs[:2]
            if outer.any():
                raise errors.InvalidArgumentError(f"{op_name}: explicit padding {pairs.tolist()} must be 0 in the "
                                                  f"batch and channel dimensions ({data_format})")
            return tuple((int(a), int(b)) for a, b in spatial)
    raise errors.InvalidArgumentError(f"{op_name}: padding must be 'SAME', 'VALID' or a list of 4 non-negative "
                                      f"[before, after] pairs, got {padding!r}")


def _geometry(op_name, in_shape, window, strides, padding, data_format, dilations=None):
    """The primitive's keywords for a window op over the NHWC ``in_shape``, and the output's (height, width)."""
    _check_format(op_name, data_format)
    s = _hw(op_name, "strides", strides, data_format)
    d = _hw(op_name, "dilations", 1 if dilations is None else dilations, data_format)
    reach = tuple((k - 1) * di + 1 for k, di in zip(window, d))
    pads = _padding(op_name, padding, in_shape[1:3], reach, s, data_format)
    out = tuple((size + p[0] + p[1] - r) // st + 1 for size, p, r, st in zip(in_shape[1:3], pads, reach, s))
    if builtins.min(out) < 1:
        raise errors.InvalidArgumentError(
            f"{op_name}: a window of size {tuple(window)} (spanning {reach} with dilations {d}) does not fit the "
            f"input's spatial shape {tuple(in_shape[1:3])} with padding {padding!r}")
    return {"strides": s, "padding": pads, "dilations": d}, out


def _conv_shapes(op_name, input_shape, filters_shape, out_shape, strides, padding, data_format, dilations,
                 with_output_shape=False):
    """Checks NHWC shapes of a convolution's input, filters and (when given) output; returns the primitive's
    keywords (and, with ``with_output_shape``, the NHWC output shape too)."""
    _check_rank(op_name, "filters", filters_shape, 4, "KH, KW, in_channels, out_channels")
    if input_shape[3] != filters_shape[2]:
        raise errors.InvalidArgumentError(
            f"{op_name}: the input has {input_shape[3]} channels (NHWC shape {tuple(input_shape)}) but filters with "
            f"shape {tuple(filters_shape)} expect {filters_shape[2]} input channels")
    geometry, (oh, ow) = _geometry(op_name, input_shape, filters_shape[:2], strides, padding, data_format, dilations)
    expected = (input_shape[0], oh, ow, filters_shape[3])
    if out_shape is not None and tuple(out_shape) != expected:
        raise errors.InvalidArgumentError(
            f"{op_name}: out_backprop has NHWC shape {tuple(out_shape)}, but an input of NHWC shape "
            f"{tuple(input_shape)} convolved with filters {tuple(filters_shape)} gives {expected}")
    return (geometry, expected) if with_output_shape else geometry


@op(inputs=("input", "filters"))
def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None):
    """2-D convolution (cross-correlation, as in TensorFlow).

    Args:
        input: tensor of shape ``(batch, height, width, in_channels)`` (``(batch, in_channels, height, width)`` for
            'NCHW').
        filters: tensor of shape ``(KH, KW, in_channels, out_channels)``, same dtype as ``input``.
        strides: an int or a list of 1, 2 or 4 ints.
        padding: 'SAME', 'VALID' or explicit ``[[0, 0], [top, bottom], [left, right], [0, 0]]`` (NHWC).
        data_format: 'NHWC' or 'NCHW'.
        dilations: an int or a list of 1, 2 or 4 ints (default 1).

    Returns:
        A tensor of shape ``(batch, out_height, out_width, out_channels)``.

    Raises:
        cuflow.errors.InvalidArgumentError: a rank is not 4, the channels differ, an argument is malformed, or the
            dilated filter does not fit the padded input.

    Example:

    >>> import cuflow as tf
    >>> tf.nn.conv2d(tf.ones((1, 5, 5, 3)), tf.ones((3, 3, 3, 8)), strides=2, padding='SAME').shape
    TensorShape([1, 3, 3, 8])
    """
    _check_format("conv2d", data_format)
    _check_rank("conv2d", "input", input.shape, 4, data_format)
    x = _to_nhwc(input, data_format)
    geometry = _conv_shapes("conv2d", x.shape, filters.shape, None, strides, padding, data_format, dilations)
    return _from_nhwc(backend(x).conv2d(x, filters, **geometry), data_format)


@conv2d.gradient
def _(grad, input, filters, out, strides, padding, data_format="NHWC", dilations=None, needs=(True, True)):
    config = {"strides": strides, "padding": padding, "data_format": data_format, "dilations": dilations}
    return (conv2d_backprop_input(tuple(input.shape), filters, grad, **config) if needs[0] else None,
            conv2d_backprop_filter(input, tuple(filters.shape), grad, **config) if needs[1] else None)


@op(inputs=("input", "filters", "bias", "residual"))
def fused_conv2d(input, filters, bias=None, residual=None, strides=1, padding="VALID", activation="linear",
                 data_format="NHWC", dilations=None):
    """``activation(conv2d(input, filters) + bias + residual)`` in one kernel: on the GPU the bias, residual and
    activation are applied in the convolution's epilogue, while the results are still in registers.

    ``Conv2D`` and ``Conv1D`` layers call it. The gradient uses the saved output for ``relu``, ``sigmoid`` and
    ``tanh``; ``gelu`` recomputes the pre-activation (one more convolution in the backward pass). The bias gradient
    is the output gradient summed over batch, height and width.

    Args:
        input, filters, strides, padding, data_format, dilations: as in :func:`conv2d`.
        bias: ``(out_channels,)``, added to every output cell; None for none.
        residual: broadcastable to the output (in ``data_format``), added before the activation; None for none.
        activation: ``"linear"``, ``"relu"``, ``"gelu"`` (exact, with erf), ``"sigmoid"`` or ``"tanh"``.

    Returns:
        A tensor shaped like ``conv2d``'s output.

    Raises:
        cuflow.errors.InvalidArgumentError: as :func:`conv2d`; an unknown activation; a bias that is not
            ``(out_channels,)``; a residual that does not broadcast to the output.

    Example:

    >>> import cuflow as tf
    >>> from cuflow.ops.conv import fused_conv2d
    >>> fused_conv2d(tf.ones((1, 3, 3, 1)), tf.ones((3, 3, 1, 2)), tf.constant([-10.0, 0.0]),
    ...              activation="relu").numpy().ravel()
    array([0., 9.], dtype=float32)
    """
    if activation not in FUSED_ACTIVATIONS:
        raise errors.InvalidArgumentError(
            f"fused_conv2d: activation must be one of {list(FUSED_ACTIVATIONS)}, got {activation!r}")
    _check_format("fused_conv2d", data_format)
    _check_rank("fused_conv2d", "input", input.shape, 4, data_format)
    x = _to_nhwc(input, data_format)
    geometry, out_shape = _conv_shapes("fused_conv2d", x.shape, filters.shape, None, strides, padding, data_format,
                                       dilations, with_output_shape=True)
    if bias is not None and tuple(bias.shape) != (filters.shape[3],):
        raise errors.InvalidArgumentError(f"fused_conv2d: bias must have shape ({filters.shape[3]},) (the filters' "
                                          f"out_channels), got {tuple(bias.shape)}")
    if data_format == "NCHW":
        out_shape = (out_shape[0], out_shape[3], out_shape[1], out_shape[2])
    if residual is not None:
        try:
            if np.broadcast_shapes(tuple(residual.shape), out_shape) != out_shape:
                raise ValueError
        except ValueError:
            raise errors.InvalidArgumentError(f"fused_conv2d: residual with shape {tuple(residual.shape)} does not "
                                              f"broadcast to the output's shape {out_shape}") from None
        residual = _to_nhwc(xp(residual).broadcast_to(residual, out_shape), data_format)
    out = backend(x).fused_conv2d(x, filters, bias, residual, activation=activation, **geometry)
    return _from_nhwc(out, data_format)


@fused_conv2d.gradient
def _(grad, input, filters, bias, residual, out, strides=1, padding="VALID", activation="linear",
      data_format="NHWC", dilations=None, needs=(True, True, True, True)):
    config = {"strides": strides, "padding": padding, "data_format": data_format, "dilations": dilations}
    grad = fused_activation_grad(grad, out, activation, lambda: fused_conv2d(input, filters, bias, residual,
                                                                             **config))
    gx, gw = conv2d.grad_fn(grad, input, filters, None, **config, needs=needs[:2])
    gbias = gres = None
    if bias is not None and needs[2]:
        gbias = reduce_sum(grad, axis=(0, 1, 2) if data_format == "NHWC" else (0, 2, 3))
    if residual is not None and needs[3]:
        gres = unbroadcast(grad, residual.shape)
    return gx, gw, gbias, gres


@op(inputs=("filters", "out_backprop"))
def conv2d_backprop_input(input_sizes, filters, out_backprop, strides, padding, data_format="NHWC",
                          dilations=None):
    """The gradient of :func:`conv2d` w.r.t. its input: ``out_backprop`` pushed back through ``filters`` into a
    tensor of shape ``input_sizes``. Same arguments as :func:`conv2d`."""
    _check_format("conv2d_backprop_input", data_format)
    _check_rank("conv2d_backprop_input", "out_backprop", out_backprop.shape, 4, data_format)
    shape = _nhwc_shape("conv2d_backprop_input", "input_sizes", input_sizes, data_format)
    dy = _to_nhwc(out_backprop, data_format)
    geometry = _conv_shapes("conv2d_backprop_input", shape, filters.shape, dy.shape, strides, padding, data_format,
                            dilations)
    return _from_nhwc(backend(dy).conv2d_backward_input(dy, filters, shape, **geometry), data_format)


@conv2d_backprop_input.gradient
def _(grad, filters, out_backprop, out, input_sizes, strides, padding, data_format="NHWC", dilations=None):
    config = {"strides": strides, "padding": padding, "data_format": data_format, "dilations": dilations}
    return (conv2d_backprop_filter(grad, tuple(filters.shape), out_backprop, **config),
            conv2d(grad, filters, **config))


@op(inputs=("input", "out_backprop"))
def conv2d_backprop_filter(input, filter_sizes, out_backprop, strides, padding, data_format="NHWC",
                           dilations=None):
    """The gradient of :func:`conv2d` w.r.t. its filters, of shape ``filter_sizes``. Same arguments as
    :func:`conv2d`."""
    _check_format("conv2d_backprop_filter", data_format)
    _check_rank("conv2d_backprop_filter", "input", input.shape, 4, data_format)
    _check_rank("conv2d_backprop_filter", "out_backprop", out_backprop.shape, 4, data_format)
    x, dy = _to_nhwc(input, data_format), _to_nhwc(out_backprop, data_format)
    filter_shape = _ints(filter_sizes, "conv2d_backprop_filter")
    geometry = _conv_shapes("conv2d_backprop_filter", x.shape, filter_shape, dy.shape, strides, padding,
                            data_format, dilations)
    return backend(x).conv2d_backward_filter(x, dy, filter_shape, **geometry)


@conv2d_backprop_filter.gradient
def _(grad, input, out_backprop, out, filter_sizes, strides, padding, data_format="NHWC", dilations=None):
    config = {"strides": strides, "padding": padding, "data_format": data_format, "dilations": dilations}
    return (conv2d_backprop_input(tuple(input.shape), grad, out_backprop, **config),
            conv2d(input, grad, **config))


def conv2d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NHWC", dilations=None,
                     name=None):
    """Transposed 2-D convolution ("deconvolution"): the gradient of :func:`conv2d` w.r.t. its input.

    Args:
        input: tensor of shape ``(batch, height, width, in_channels)``.
        filters: tensor of shape ``(KH, KW, out_channels, in_channels)`` (note the order: conv2d's filters for the
            opposite direction).
        output_shape: the 4 ints of the result's shape.
        strides, padding, data_format, dilations: as in :func:`conv2d`, describing the forward convolution.

    Example:

    >>> import cuflow as tf
    >>> tf.nn.conv2d_transpose(tf.ones((1, 3, 3, 8)), tf.ones((3, 3, 4, 8)), [1, 6, 6, 4], strides=2).shape
    TensorShape([1, 6, 6, 4])
    """
    return conv2d_backprop_input(_ints(output_shape, "conv2d_transpose"), filters, input, strides=strides,
                                 padding=padding, data_format=data_format, dilations=dilations)


# --- 1-D forms: a length-1 height axis around the 2-D ops -----------------------------------------------------------
def _lift_1d(op_name, input, data_format):
    """(rank-4 input, 2-D data_format, axis of the new height): the 1-D input seen as an image of height 1."""
    if data_format not in ("NWC", "NCW"):
        raise errors.InvalidArgumentError(f"{op_name}: data_format must be 'NWC' or 'NCW', got {data_format!r}")
    input = convert_to_tensor(input)
    _check_rank(op_name, "input", input.shape, 3, data_format)
    axis = 1 if data_format == "NWC" else 2
    return expand_dims(input, axis), ("NHWC" if data_format == "NWC" else "NCHW"), axis


def _lift_arg(value, axis):
    """A 1-D stride/ksize/dilation/padding in TensorFlow's forms, as the 2-D one for a length-1 height axis."""
    if value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Tensor):
        value = np.asarray(value).tolist()
    if isinstance(value, (int, np.integer)):
        return [1, int(value)]
    value = list(value)
    if len(value) == 1:
        return [1, value[0]]
    pad_row = isinstance(value[0], (list, tuple, np.ndarray))
    return value[:axis] + [[0, 0] if pad_row else 1] + value[axis:]


def conv1d(input, filters, stride, padding, data_format="NWC", dilations=None, name=None):
    """1-D convolution over ``input`` of shape ``(batch, width, in_channels)`` with ``filters`` of shape
    ``(K, in_channels, out_channels)``; the other arguments as in :func:`conv2d`, with one spatial entry."""
    return fused_conv1d(input, filters, None, stride, padding, data_format=data_format, dilations=dilations)


def fused_conv1d(input, filters, bias=None, stride=1, padding="VALID", activation="linear", data_format="NWC",
                 dilations=None):
    """``activation(conv1d(input, filters) + bias)``: :func:`fused_conv2d` over an image of height 1 (``Conv1D``
    calls it). Arguments as :func:`conv1d`; ``bias`` and ``activation`` as :func:`fused_conv2d`."""
    lifted, fmt, axis = _lift_1d("conv1d", input, data_format)
    filters = expand_dims(convert_to_tensor(filters), 0)
    out = fused_conv2d(lifted, filters, bias, None, _lift_arg(stride, axis), _lift_arg(padding, axis),
                       activation=activation, data_format=fmt, dilations=_lift_arg(dilations, axis))
    return squeeze(out, axis)


# --- pooling -------------------------------------------------------------------------------------------------------
def _pool_geometry(op_name, in_shape, ksize, strides, padding, data_format):
    window = _hw(op_name, "ksize", ksize, data_format)
    geometry, out = _geometry(op_name, in_shape, window, strides, padding, data_format)
    if builtins.any(p >= k for k, pair in zip(window, geometry["padding"]) for p in pair):
        raise errors.InvalidArgumentError(f"{op_name}: padding {padding!r} must be smaller than the window "
                                          f"{window} on each side, or some windows would hold only padding")
    del geometry["dilations"]
    geometry["ksize"] = window
    return geometry, out


def _pool(op_name, primitive, input, ksize, strides, padding, data_format):
    _check_format(op_name, data_format)
    _check_rank(op_name, "input", input.shape, 4, data_format)
    x = _to_nhwc(input, data_format)
    geometry, _ = _pool_geometry(op_name, x.shape, ksize, strides, padding, data_format)
    return _from_nhwc(getattr(backend(x), primitive)(x, **geometry), data_format)


@op(inputs=("input",))
def max_pool2d(input, ksize, strides, padding, data_format="NHWC"):
    """The maximum over each ``ksize`` window of ``input`` (padded cells never win).

    Args:
        input: tensor of shape ``(batch, height, width, channels)`` (``(batch, channels, height, width)`` for
            'NCHW').
        ksize, strides: an int or a list of 1, 2 or 4 ints.
        padding: 'SAME', 'VALID' or an explicit list of 4 ``[before, after]`` pairs.
        data_format: 'NHWC' or 'NCHW'.

    The gradient goes to the first maximum of each window, as in TensorFlow.

    Example:

    >>> import cuflow as tf
    >>> tf.nn.max_pool2d(tf.ones((1, 4, 4, 2)), ksize=2, strides=2, padding='VALID').shape
    TensorShape([1, 2, 2, 2])
    """
    return _pool("max_pool2d", "max_pool2d", input, ksize, strides, padding, data_format)


@max_pool2d.gradient
def _(grad, input, out, ksize, strides, padding, data_format="NHWC"):
    return _max_pool2d_grad(input, out, grad, ksize=ksize, strides=strides, padding=padding, data_format=data_format)


@op(inputs=("input", "output", "grad"))
def _max_pool2d_grad(input, output, grad, ksize, strides, padding, data_format="NHWC"):
    x, y, g = (_to_nhwc(a, data_format) for a in (input, output, grad))
    geometry, _ = _pool_geometry("max_pool2d", x.shape, ksize, strides, padding, data_format)
    return _from_nhwc(backend(x).max_pool2d_backward(x, y, g, **geometry), data_format)


@_max_pool2d_grad.gradient
def _(gg, input, output, grad, out, ksize, strides, padding, data_format="NHWC"):
    return None, None, _max_pool2d_select(input, gg, ksize=ksize, strides=strides, padding=padding,
                                          data_format=data_format)


@op(inputs=("input", "values"))
def _max_pool2d_select(input, values, ksize, strides, padding, data_format="NHWC"):
    """For each pooling window, the element of ``values`` where ``input`` has its first maximum: the adjoint of
    max_pool2d's gradient, so the second derivative of max pooling."""
    x, v = _to_nhwc(input, data_format), _to_nhwc(values, data_format)
    geometry, (oh, ow) = _pool_geometry("max_pool2d", x.shape, ksize, strides, padding, data_format)
    m = xp(x)
    pads = ((0, 0),) + geometry["padding"] + ((0, 0),)
    x = m.pad(x, pads, constant_values=-np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min)
    v = m.pad(v, pads)
    (sh, sw), (kh, kw) = geometry["strides"], geometry["ksize"]
    best = picked = None
    for i in builtins.range(kh):  # window cells in row-major order; strict '>' keeps the first maximum
        for j in builtins.range(kw):
            cell = (slice(None), slice(i, i + (oh - 1) * sh + 1, sh), slice(j, j + (ow - 1) * sw + 1, sw))
            if best is None:
                best, picked = x[cell], v[cell]
                continue
            better = x[cell] > best
            best, picked = m.where(better, x[cell], best), m.where(better, v[cell], picked)
    return _from_nhwc(m.ascontiguousarray(picked), data_format)


@_max_pool2d_select.gradient
def _(grad, input, values, out, ksize, strides, padding, data_format="NHWC"):
    config = {"ksize": ksize, "strides": strides, "padding": padding, "data_format": data_format}
    return None, _max_pool2d_grad(input, max_pool2d(input, **config), grad, **config)


@op(inputs=("input",))
def avg_pool2d(input, ksize, strides, padding, data_format="NHWC"):
    """The mean over each ``ksize`` window of ``input``; with 'SAME' padding, padded cells are not counted.
    Arguments as in :func:`max_pool2d`."""
    return _pool("avg_pool2d", "avg_pool2d", input, ksize, strides, padding, data_format)


@avg_pool2d.gradient
def _(grad, input, out, ksize, strides, padding, data_format="NHWC"):
    return _avg_pool2d_grad(grad, input_shape=tuple(input.shape), ksize=ksize, strides=strides, padding=padding,
                            data_format=data_format)


@op(inputs=("grad",))
def _avg_pool2d_grad(grad, input_shape, ksize, strides, padding, data_format="NHWC"):
    shape = _nhwc_shape("avg_pool2d", "input_shape", input_shape, data_format)
    geometry, _ = _pool_geometry("avg_pool2d", shape, ksize, strides, padding, data_format)
    g = _to_nhwc(grad, data_format)
    return _from_nhwc(backend(g).avg_pool2d_backward(g, shape, **geometry), data_format)


@_avg_pool2d_grad.gradient
def _(gg, grad, out, input_shape, ksize, strides, padding, data_format="NHWC"):
    # average pooling is linear, and its backward is its adjoint: the adjoint of that is average pooling again
    return avg_pool2d(gg, ksize=ksize, strides=strides, padding=padding, data_format=data_format)


def _pool1d(op_name, pool2d, input, ksize, strides, padding, data_format):
    lifted, fmt, axis = _lift_1d(op_name, input, data_format)
    out = pool2d(lifted, _lift_arg(ksize, axis), _lift_arg(strides, axis), _lift_arg(padding, axis), data_format=fmt)
    return squeeze(out, axis)


def max_pool1d(input, ksize, strides, padding, data_format="NWC", name=None):
    """1-D max pooling over ``input`` of shape ``(batch, width, channels)``; arguments as in :func:`max_pool2d`."""
    return _pool1d("max_pool1d", max_pool2d, input, ksize, strides, padding, data_format)


def avg_pool1d(input, ksize, strides, padding, data_format="NWC", name=None):
    """1-D average pooling over ``input`` of shape ``(batch, width, channels)``."""
    return _pool1d("avg_pool1d", avg_pool2d, input, ksize, strides, padding, data_format)


def _pool_nd(op_name, pool1d, pool2d, input, ksize, strides, padding, data_format):
    input = convert_to_tensor(input)
    if len(input.shape) == 3:
        return pool1d(input, ksize, strides, padding, data_format=data_format or "NWC")
    if len(input.shape) == 4:
        return pool2d(input, ksize, strides, padding, data_format=data_format or "NHWC")
    raise errors.InvalidArgumentError(f"{op_name}: input must have rank 3 (1-D pooling) or 4 (2-D pooling), got "
                                      f"shape {tuple(input.shape)}")


def max_pool(input, ksize, strides, padding, data_format=None, name=None):
    """Max pooling of a rank-3 (1-D) or rank-4 (2-D) ``input``: see :func:`max_pool2d`."""
    return _pool_nd("max_pool", max_pool1d, max_pool2d, input, ksize, strides, padding, data_format)


def avg_pool(input, ksize, strides, padding, data_format=None, name=None):
    """Average pooling of a rank-3 (1-D) or rank-4 (2-D) ``input``: see :func:`avg_pool2d`."""
    return _pool_nd("avg_pool", avg_pool1d, avg_pool2d, input, ksize, strides, padding, data_format)
