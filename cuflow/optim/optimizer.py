"""The optimizer base class: gradient clipping, the step counter, the learning rate (a float or a schedule) and
per-variable slots. A subclass only names its slots and writes one ``update(var, grad, slots)``.

``update`` works on raw arrays (NumPy on the CPU, CuPy on the GPU) and changes ``var`` and the slot arrays in
place, so a step allocates nothing per variable that outlives it and never copies a value to the host. On the GPU
the built-in optimizers update all float32/float64 variables of a step in one launch of their multi-tensor kernel
(``cuflow/kernels/optim.cu``, named with its step's scalars by :meth:`Optimizer.fused_update`); ``update`` is the
reference that kernel follows, and what runs on the CPU, for other dtypes and for optimizers without a kernel.
"""
import math
import warnings

import numpy as np

from .. import dtypes
from ..kernels.compile import KERNEL_DTYPES
from ..ops.base import array_of, xp
from ..tape import GradientTape
from ..tensor import Tensor, Variable
from . import schedules as _schedules

__all__ = ["Optimizer"]


class Optimizer:
    """Base class of cuflow's optimizers (Keras 3 semantics).

    Args:
        learning_rate: a float or a :class:`~cuflow.optim.schedules.LearningRateSchedule` called with the step
            count (``iterations``) before each step.
        weight_decay: if set, each variable first shrinks by ``var * weight_decay * learning_rate`` (decoupled
            weight decay, as in Keras 3).
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: scale all gradients together so that their joint L2 norm is at most this.
        name: the optimizer's name.

    Only one of ``clipnorm``, ``clipvalue`` and ``global_clipnorm`` may be set.

    Subclasses set :meth:`slot_names` (and, if not zeros, :meth:`slot_initial_value`) and :meth:`update`, which
    reads ``self._lr`` (the step's learning rate, a Python float) and ``self._step`` (1 on the first step).
    """

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="optimizer", **kwargs):
        for key in ("use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                    "gradient_accumulation_steps", "jit_compile", "decay"):
            kwargs.pop(key, None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{type(self).__name__}: only one of clipnorm, clipvalue and global_clipnorm can be set, "
                             f"got clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.name = name
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.learning_rate = learning_rate
        self.iterations = Variable(0, dtype=dtypes.int64, trainable=False, name=f"{name}/iteration")
        self._seen_iterations = self.iterations._data  # replaced only when someone assigns `iterations`
        self._step_count = 0           # the same count on the host: schedules and bias corrections read it
        self._slots = {}               # var.ref() -> {slot name: Variable}
        self._tensor_lists = {}        # dtype -> the fused kernels' TensorList of the last GPU step (reused)
        self._work_buffers = {}        # dtype -> flat host arrays that update()'s temporaries are written into
        self._lr = None
        self._step = None

    # --- learning rate ------------------------------------------------------------------------------------------
    @property
    def learning_rate(self):
        """The learning rate: the float, or the schedule's value at the current step."""
        if isinstance(self._learning_rate, _schedules.LearningRateSchedule):
            return float(self._learning_rate(self._current_iterations()))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, Tensor):
            value = float(value)
        if not isinstance(value, _schedules.LearningRateSchedule):
            if callable(value):
                raise TypeError(f"{type(self).__name__}: learning_rate must be a float or a LearningRateSchedule, "
                                f"got {value!r}")
            value = float(value)
        self._learning_rate = value

    # --- slots --------------------------------------------------------------------------------------------------
    def slot_names(self):
        """The names of the per-variable state this optimizer keeps (``()`` for plain SGD)."""
        return ()

    def slot_initial_value(self, name, var_data):
        """The initial array of slot ``name`` for a variable holding ``var_data`` (zeros by default)."""
        return xp(var_data).zeros_like(var_data)

    def build(self, var_list):
        """Creates the slots of each variable in ``var_list`` that has none yet (done on the first step)."""
        for var in var_list:
            key = var.ref()
            if key in self._slots:
                continue
            # the optimizer writes into var's array in place: make sure no one else (a NumPy array the variable
            # was created from) shares it
            var._data = var._data.copy()
            base = var.name.split(":")[0]
            self._slots[key] = {
                slot: Variable(Tensor(self.slot_initial_value(slot, var._data)), trainable=False,
                               name=f"{base}/{slot}")
                for slot in self.slot_names()}

    def get_slot(self, var, name):
        """The slot Variable ``name`` of ``var``."""
        return self._slots[var.ref()][name]

    def variables(self):
        """The optimizer's own state: ``iterations`` followed by every slot Variable."""
        return [self.iterations] + [v for slots in self._slots.values() for v in slots.values()]

    # --- a step -------------------------------------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        """Applies one step: ``grads_and_vars`` is an iterable of ``(gradient, variable)``; pairs whose gradient
        is None are skipped (with a warning), as in Keras.

        Returns:
            ``iterations``, after it is incremented.

        Raises:
            ValueError: no variable has a gradient, or a gradient's shape differs from its variable's.
        """
        pairs = list(grads_and_vars)
        kept = [(g, v) for g, v in pairs if g is not None]
        if not kept:
            names = ", ".join(getattr(v, "name", repr(v)) for _, v in pairs)
            raise ValueError(f"{type(self).__name__}.apply_gradients: no gradients provided for any variable "
                             f"({names or 'the list is empty'})")
        if len(kept) < len(pairs):
            missing = ", ".join(v.name for g, v in pairs if g is None)
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the loss.", stacklevel=2)
        variables = [v for _, v in kept]
        for v in variables:
            if not isinstance(v, Variable):
                raise TypeError(f"{type(self).__name__}.apply_gradients: expected Variables, got "
                                f"{type(v).__name__}")
        grads = [self._gradient_array(g, v) for g, v in kept]
        grads = self._clip(grads)
        self.build(variables)
        self._step = self._current_iterations() + 1
        self._lr = self.learning_rate
        self._apply_updates(grads, variables)
        self._step_count = self._step
        # in place: Variable.assign_add on a 0-d array would leave a NumPy scalar behind
        counter = self.iterations._data
        counter += 1
        self._seen_iterations = counter
        return self.iterations

    def update(self, var, grad, slots):
        """Updates the array ``var`` in place from ``grad`` and the slot arrays ``slots`` (a dict by name).
        Temporaries can go into :meth:`_work_arrays` rather than new arrays."""
        raise NotImplementedError(f"{type(self).__name__} must implement update(var, grad, slots)")

    def _work_arrays(self, like, count):
        """``count`` scratch arrays of ``like``'s shape and dtype, for :meth:`update` to write its temporaries into
        (``out=``) instead of allocating them.

        On the CPU they are views of flat buffers the optimizer keeps across steps, one set per dtype, as large as
        the largest variable: a fresh array per temporary costs more than the arithmetic on it (a large allocation
        is fresh pages, each one faulted in), and an update computed this way rounds exactly as the plain
        expression does. On a GPU CuPy's memory pool already makes allocation cheap: they are new arrays.
        """
        if type(like) is not np.ndarray:
            return [xp(like).empty_like(like) for _ in range(count)]
        buffers = self._work_buffers.get(like.dtype)
        if buffers is None or len(buffers) < count or buffers[0].size < like.size:
            size = max(like.size, buffers[0].size if buffers else 0)
            buffers = self._work_buffers[like.dtype] = [np.empty(size, like.dtype)
                                                        for _ in range(max(count, len(buffers or ())))]
        return [buffer[:like.size].reshape(like.shape) for buffer in buffers[:count]]

    def fused_update(self, dtype):
        """optim.cu's kernel for this step on variables of ``dtype``: ``(kernel name, scalar arguments)``, the
        scalars as NumPy scalars in the order the kernel takes them after the tensor list; None (the default) when
        this optimizer has no multi-tensor kernel, so :meth:`update` runs per variable on the GPU too."""
        return None

    def _apply_updates(self, grads, variables):
        """Weight decay and :meth:`update` for each variable; on the GPU one fused launch per dtype instead."""
        groups = {}
        for grad, var in zip(grads, variables):
            if _fusable(var._data):
                groups.setdefault(var._data.dtype, []).append((grad, var))
            else:
                self._update_one(grad, var)
        for dtype, pairs in groups.items():
            launch = self.fused_update(dtype)
            if launch is None:
                for grad, var in pairs:
                    self._update_one(grad, var)
            else:
                self._fused_step(launch, dtype, pairs)

    def _update_one(self, grad, var):
        if self.weight_decay:
            data = var._data
            (decay,) = self._work_arrays(data, 1)
            xp(data).multiply(data, self.weight_decay * self._lr, out=decay)
            data -= decay  # data -= data * (weight_decay * lr), without allocating the product
        slots = {name: slot._data for name, slot in self._slots[var.ref()].items()}
        self.update(var._data, grad, slots)

    def _fused_step(self, launch, dtype, pairs):
        from ..kernels import fused  # the GPU is there: these arrays live on it
        if len({id(v._data) for _, v in pairs}) < len(pairs):  # a variable listed twice: updated twice, in order
            for pair in pairs:
                self._fused_step(launch, dtype, [pair])
            return
        arrays = [var._data for _, var in pairs]
        slots = [tuple(slot._data for slot in self._slots[var.ref()].values()) for _, var in pairs]
        tensors = self._tensor_lists[dtype] = fused.tensor_list(arrays, slots, self._tensor_lists.get(dtype))
        decay = self.weight_decay * self._lr if self.weight_decay else None
        kernel, scalars = launch
        fused.optimizer_update(kernel, tensors, [grad for grad, _ in pairs], decay, scalars)

    def minimize(self, loss, var_list, tape=None):
        """Computes the gradients of ``loss`` with respect to ``var_list`` and applies them.

        Args:
            loss: a scalar Tensor (then ``tape`` must be the tape that recorded it) or a zero-argument callable
                returning one.
            var_list: the Variables to update (or a callable returning them).
            tape: the ``GradientTape`` that recorded ``loss``.

        Returns:
            ``iterations``.
        """
        if callable(loss):
            with GradientTape() as tape:
                if not callable(var_list):
                    tape.watch(list(var_list))
                loss = loss()
        elif tape is None:
            raise ValueError(f"{type(self).__name__}.minimize: `tape` is required when `loss` is a Tensor; pass "
                             "the GradientTape that computed it, or pass the loss as a callable")
        if callable(var_list):
            var_list = var_list()
        var_list = list(var_list)
        grads = tape.gradient(loss, var_list)
        return self.apply_gradients(zip(grads, var_list))

    def _current_iterations(self):
        # reading `iterations` would copy it to the host each step; only do so when someone assigned it
        if self.iterations._data is not self._seen_iterations:
            self._step_count = int(np.asarray(self.iterations))
            self._seen_iterations = self.iterations._data
        return self._step_count

    def _gradient_array(self, grad, var):
        if isinstance(grad, Tensor) and type(grad._data) is np.ndarray and type(var._data) is np.ndarray:
            data = grad._data  # the CPU case: nothing to convert and no device to check
        elif type(grad).__name__ == "IndexedSlices":
            raise NotImplementedError("sparse (IndexedSlices) gradients are not supported yet")
        else:
            data = array_of(grad, like=var._data)
        if tuple(data.shape) != tuple(var._data.shape):
            raise ValueError(f"{type(self).__name__}.apply_gradients: the gradient for {var.name} has shape "
                             f"{tuple(data.shape)}, the variable has shape {tuple(var._data.shape)}")
        if data.dtype != var._data.dtype:
            data = data.astype(var._data.dtype)
        return data

    def _clip(self, grads):
        """Keras 3's gradient clipping; norms are computed on the device, with no host copy."""
        if self.clipnorm is not None and self.clipnorm > 0:
            return [_clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm is not None and self.global_clipnorm > 0:
            m = xp(grads[0])
            norm = m.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
            scale = self.global_clipnorm / m.maximum(norm, self.global_clipnorm)
            return [g * scale.astype(g.dtype) for g in grads]
        if self.clipvalue is not None and self.clipvalue > 0:
            return [xp(g).clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    # --- config -------------------------------------------------------------------------------------------------
    def get_config(self):
        """The arguments that rebuild this optimizer (a schedule is serialized as a dict)."""
        lr = self._learning_rate
        if isinstance(lr, _schedules.LearningRateSchedule):
            lr = _schedules.serialize(lr)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        return f"<cuflow.optimizers.{type(self).__name__} name={self.name!r} learning_rate={self._learning_rate!r}>"


def _fusable(data):
    """Whether optim.cu can update ``data`` in place: a contiguous float32/float64 array on the GPU."""
    return type(data) is not np.ndarray and data.dtype.name in KERNEL_DTYPES and data.flags.c_contiguous


def _clip_by_norm(grad, clip_norm):
    norm = xp(grad).sqrt((grad * grad).sum())
    return grad * (clip_norm / xp(grad).maximum(norm, clip_norm)).astype(grad.dtype)


def _bias_correction(beta, step):
    """``1 - beta ** step`` as a Python float (the step lives on the host, so this costs no device work)."""
    return 1.0 - math.pow(beta, step)
