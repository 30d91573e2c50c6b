"""GradientTape: records op calls while active and walks them backwards.

Every op call ends in ``Op.__call__``, which calls :func:`record` only when :data:`active` is non-empty (one branch
when no tape is in use). A tape keeps the calls whose inputs it watches, in execution order, so walking that list
backwards is already a topological order. Gradients are computed with cuflow ops, so an outer tape records the
backward pass of an inner one: that is how higher-order gradients work.
"""
import threading

from .tensor import Tensor, Variable

__all__ = ["GradientTape", "record", "active"]

active = []  # the tapes currently recording, innermost last (a plain list: `if active:` is the hot-path test)
_lock = threading.Lock()


def record(op, inputs, outputs, attrs):
    """Called by ``Op.__call__`` after the forward ran, only while some tape is active."""
    for tape in active:
        tape._record(op, inputs, outputs, attrs)


class GradientTape:
    """Records operations for automatic differentiation.

    Args:
        persistent: allow more than one ``gradient``/``jacobian`` call (the tape then keeps its recording until it
            is deleted or ``reset``).
        watch_accessed_variables: watch every trainable ``Variable`` an op reads while the tape is active.

    Example:

    >>> import cuflow as tf
    >>> x = tf.constant(3.0)
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(x)
    ...     y = x * x
    >>> float(tape.gradient(y, x))
    6.0
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self._persistent = persistent
        self._watch_accessed = watch_accessed_variables
        self._entries = []      # (op, inputs, outputs, attrs) in execution order
        self._watched = {}      # id(tensor) -> tensor (kept alive so ids stay unique)
        self._recording = False
        self._used = False

    # --- recording ----------------------------------------------------------------------------------------------
    def __enter__(self):
        self._push()
        return self

    def __exit__(self, *exc):
        self._pop()
        return False

    def _push(self):
        if self._recording:
            raise ValueError("GradientTape: this tape is already recording (nested `with` on the same tape)")
        self._recording = True
        active.append(self)

    def _pop(self):
        self._recording = False
        active.remove(self)

    def _record(self, op, inputs, outputs, attrs):
        watched = self._watched
        hit = False
        for x in inputs:
            key = id(x)
            if key in watched:
                hit = True
            elif self._watch_accessed and isinstance(x, Variable) and x.trainable:
                watched[key] = x
                hit = True
        if not hit:
            return
        self._entries.append((op, inputs, outputs, attrs))
        if type(outputs) is Tensor:
            watched[id(outputs)] = outputs
        else:
            for out in outputs:
                watched[id(out)] = out

    def watch(self, tensor):
        """Ensures ``tensor`` (a Tensor, Variable or a nested list/tuple/dict of them) is traced by this tape."""
        for t in _flatten(tensor):
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.watch: expected Tensors or Variables, got {type(t).__name__}")
            if t.dtype.is_floating:  # TF ignores (with a warning) integer tensors: they get no gradient anyway
                self._watched[id(t)] = t

    def watched_variables(self):
        """The Variables this tape watches, in the order they were first watched."""
        return tuple(t for t in self._watched.values() if isinstance(t, Variable))

    def stop_recording(self):
        """Context manager that pauses recording on this tape (ops inside are not differentiated)."""
        return _Paused(self)

    def reset(self):
        """Forgets everything recorded so far; the tape keeps recording if it is active."""
        self._entries = []
        self._watched = {}
        self._used = False

    # --- differentiating ----------------------------------------------------------------------------------------
    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """The gradient of ``target`` (summed over its elements, like TF) with respect to ``sources``.

        Args:
            target: a Tensor or a nested structure of Tensors (their gradients are added).
            sources: a Tensor/Variable or a nested list/tuple/dict of them; the result has the same structure.
            output_gradients: gradients of something downstream w.r.t. ``target`` (default: ones).
            unconnected_gradients: ``'none'`` (default) gives ``None`` for sources ``target`` does not depend on;
                ``'zero'`` gives zeros of the source's shape.

        Returns:
            The gradients in the structure of ``sources``. Integer sources get ``None``.

        Raises:
            RuntimeError: a non-persistent tape is asked a second time.
        """
        self._check_usable("gradient")
        how = _unconnected(unconnected_gradients)
        targets = list(_flatten(target))
        seeds = list(_flatten(output_gradients)) if output_gradients is not None else [None] * len(targets)
        if len(seeds) != len(targets):
            raise ValueError(f"GradientTape.gradient: {len(targets)} targets but {len(seeds)} output_gradients")
        flat_sources = list(_flatten(sources))
        for s in flat_sources:
            if not isinstance(s, Tensor):
                raise TypeError(f"GradientTape.gradient: sources must be Tensors or Variables, got {type(s).__name__}")
        grads = self._backprop(targets, seeds, flat_sources, how)
        if not self._persistent:
            self._release()
        return _pack(sources, iter(grads))

    def jacobian(self, target, sources, unconnected_gradients="none", parallel_iterations=None,
                 experimental_use_pfor=True):
        """The Jacobian of ``target`` w.r.t. each source: shape ``target.shape + source.shape``."""
        from . import ops
        self._check_usable("jacobian")
        how = _unconnected(unconnected_gradients)
        flat_sources = list(_flatten(sources))
        target_shape = tuple(target.shape)
        n = 1
        for d in target_shape:
            n *= d
        rows = [[] for _ in flat_sources]
        for i in range(n):
            seed = ops.reshape(ops.one_hot(i, n, dtype=target.dtype), target_shape)
            for row, g, s in zip(rows, self._backprop([target], [seed], flat_sources, "zero"), flat_sources):
                row.append(g)
        result = []
        for row, s in zip(rows, flat_sources):
            if not s.dtype.is_floating:
                result.append(None)
                continue
            jac = ops.reshape(ops.stack(row), target_shape + tuple(s.shape)) if row else \
                ops.zeros(target_shape + tuple(s.shape), dtype=s.dtype)
            if how == "none" and not self._connected(target, s):
                jac = None
            result.append(jac)
        if not self._persistent:
            self._release()
        return _pack(sources, iter(result))

    def batch_jacobian(self, target, source, unconnected_gradients="none", parallel_iterations=None,
                       experimental_use_pfor=True):
        """Per-example Jacobians: ``target[b]`` w.r.t. ``source[b]``, shape ``(batch,) + target.shape[1:] +
        source.shape[1:]``. Assumes example ``b`` of ``target`` depends only on example ``b`` of ``source``."""
        from . import ops
        self._check_usable("batch_jacobian")
        how = _unconnected(unconnected_gradients)
        target_shape, source_shape = tuple(target.shape), tuple(source.shape)
        if target_shape[:1] != source_shape[:1]:
            raise ValueError(f"GradientTape.batch_jacobian: target batch size {target_shape[:1]} differs from source "
                             f"batch size {source_shape[:1]}")
        batch, inner = target_shape[0], 1
        for d in target_shape[1:]:
            inner *= d
        columns = []
        for j in range(inner):
            seed = ops.reshape(ops.tile(ops.one_hot(j, inner, dtype=target.dtype)[None], [batch, 1]), target_shape)
            columns.append(self._backprop([target], [seed], [source], "zero")[0])
        connected = how == "zero" or self._connected(target, source)
        if not self._persistent:
            self._release()
        if not connected:
            return None
        jac = ops.stack(columns, axis=1) if columns else ops.zeros((batch, 0) + source_shape[1:], source.dtype)
        return ops.reshape(jac, target_shape + source_shape[1:])

    # --- internals ----------------------------------------------------------------------------------------------
    def _check_usable(self, what):
        if self._used and not self._persistent:
            raise RuntimeError(f"GradientTape.{what}: a non-persistent GradientTape can only be used to compute one "
                               "set of gradients (or jacobians); create it with persistent=True to call it again")

    def _release(self):
        self._used = True
        self._entries = []
        self._watched = {key: t for key, t in self._watched.items() if isinstance(t, Variable)}

    def _connected(self, target, source):
        reached = {id(source)}
        for _, inputs, outputs, _ in self._entries:
            if any(id(x) in reached for x in inputs):
                reached.update(id(o) for o in (outputs if isinstance(outputs, list) else [outputs]))
        return id(target) in reached

    def _backprop(self, targets, seeds, sources, how):
        from . import ops
        grads = {}
        watched = self._watched
        for t, seed in zip(targets, seeds):
            if not isinstance(t, Tensor) or not t.dtype.is_floating:
                continue
            seed = ops.ones_like(t) if seed is None else ops.convert_to_tensor(seed, dtype=t.dtype)
            _accumulate(grads, t, seed)
        was_recording = self._recording
        if was_recording:  # this tape does not record its own backward pass; outer tapes still do
            active.remove(self)
            self._recording = False
        grad_of = grads.get
        try:
            for op, inputs, outputs, attrs in reversed(self._entries):
                if type(outputs) is Tensor:
                    grad = grad_of(id(outputs))
                    if grad is None:
                        continue
                else:
                    found = [grad_of(id(o)) for o in outputs]
                    if all(g is None for g in found):
                        continue
                    grad = [ops.zeros_like(o) if g is None else g for o, g in zip(outputs, found)]
                out = outputs
                needs = tuple([id(x) in watched and x.dtype.is_floating for x in inputs])
                if True not in needs:
                    continue
                if op.grad_fn is None:
                    raise LookupError(f"GradientTape: op '{op.name}' has no gradient defined")
                kwargs = {**attrs, "needs": needs} if op.grad_wants_needs else attrs
                if op.variadic:
                    in_grads = op.grad_fn(grad, list(inputs), out, **kwargs)
                else:
                    in_grads = op.grad_fn(grad, *inputs, out, **kwargs)
                if len(inputs) == 1 and not op.variadic:
                    in_grads = (in_grads,)
                for x, g, needed in zip(inputs, in_grads, needs):
                    # only watched tensors (and results of recorded ops) get gradients, as in TF
                    if g is not None and needed:
                        _accumulate(grads, x, g)
        finally:
            if was_recording:
                self._recording = True
                active.append(self)
        result = []
        for s in sources:
            g = grads.get(id(s))
            if not s.dtype.is_floating:
                g = None
            elif g is None and how == "zero":
                g = ops.zeros_like(s)
            elif g is not None and g.dtype != s.dtype:
                g = ops.cast(g, s.dtype)
            result.append(g)
        return result


class _Paused:
    def __init__(self, tape):
        self._tape = tape

    def __enter__(self):
        if not self._tape._recording:
            raise ValueError("GradientTape.stop_recording: the tape is not recording")
        self._tape._pop()
        return self

    def __exit__(self, *exc):
        self._tape._push()
        return False


def _accumulate(grads, x, g):
    key = id(x)
    previous = grads.get(key)
    grads[key] = g if previous is None else previous + g


def _unconnected(value):
    value = getattr(value, "value", value)  # accepts tf.UnconnectedGradients.ZERO-style enums
    value = str(value).lower()
    if value not in ("none", "zero"):
        raise ValueError(f"GradientTape: unconnected_gradients must be 'none' or 'zero', got {value!r}")
    return value


def _flatten(structure):
    if isinstance(structure, dict):
        for key in sorted(structure, key=str):
            yield from _flatten(structure[key])
    elif isinstance(structure, (list, tuple)):
        for item in structure:
            yield from _flatten(item)
    else:
        yield structure


def _pack(structure, flat):
    if isinstance(structure, dict):
        packed = {key: _pack(structure[key], flat) for key in sorted(structure, key=str)}
        return {key: packed[key] for key in structure}
    if isinstance(structure, (list, tuple)):
        items = [_pack(item, flat) for item in structure]
        return type(structure)(items) if not hasattr(structure, "_fields") else type(structure)(*items)
    return next(flat)
