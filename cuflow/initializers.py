"""``keras.initializers``: starting values for weights, with Keras 3's formulas and names.

Random initializers draw with :mod:`cuflow.random` (Philox), so the CPU and the GPU give the same numbers. Without a
seed they follow the global seed (``tf.random.set_seed``); with ``seed=`` an initializer is a pure function of its
seed and returns the same values on every call, as Keras 3's seeded initializers do.

Example:

>>> from cuflow import initializers
>>> initializers.get("ones")((2,)).numpy()
array([1., 1.], dtype=float32)
"""
import math

import numpy as np

from . import dtypes
from .tensor import constant
from .ops import random as _random
from .ops.array import zeros as _zeros, fill as _fill, cast as _cast

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal",
           "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal",
           "LecunUniform", "Orthogonal", "get", "serialize", "compute_fans"]


def compute_fans(shape):
    """Keras's (fan_in, fan_out): a conv kernel ``(..., in, out)`` counts its receptive field in both."""
    shape = tuple(shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``initializer(shape, dtype=None)`` returns a Tensor on the current device."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return _zeros(tuple(shape), dtype=dtype or dtypes.float32)


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return _fill(tuple(shape), _scalar(1, dtype))


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return _fill(tuple(shape), _scalar(self.value, dtype))

    def get_config(self):
        return {"value": self.value}


def _scalar(value, dtype):
    return constant(value, dtype=dtype or dtypes.float32)


class _Seeded(Initializer):
    """Draws from ``tf.random`` (stateful, global seed) or, with ``seed``, from the stateless stream ``[seed, 0]``."""

    def __init__(self, seed=None):
        self.seed = seed

    def _draw(self, kind, shape, dtype, **params):
        shape, dtype = tuple(shape), dtype or dtypes.float32
        if self.seed is None:
            return getattr(_random, kind)(shape, dtype=dtype, **params)
        return getattr(_random, "stateless_" + kind)(shape, seed=[int(self.seed), 0], dtype=dtype, **params)

    def get_config(self):
        return {"seed": self.seed}


class RandomNormal(_Seeded):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=None):
        return self._draw("normal", shape, dtype, mean=self.mean, stddev=self.stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class TruncatedNormal(RandomNormal):
    """Normal values redrawn until within two standard deviations of the mean."""

    def __call__(self, shape, dtype=None):
        return self._draw("truncated_normal", shape, dtype, mean=self.mean, stddev=self.stddev)


class RandomUniform(_Seeded):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=None):
        return self._draw("uniform", shape, dtype, minval=self.minval, maxval=self.maxval)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


_TRUNCATED_STDDEV = 0.87962566103423978  # stddev of a unit normal truncated to [-2, 2]: Keras divides it out


class VarianceScaling(_Seeded):
    """Values with variance ``scale / n``, ``n`` the fan-in, fan-out or their mean (``mode``).

    ``distribution`` is ``'truncated_normal'``, ``'untruncated_normal'`` or ``'uniform'`` (``[-limit, limit]`` with
    ``limit = sqrt(3 * scale / n)``).
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError("VarianceScaling: distribution must be 'truncated_normal', 'untruncated_normal' or "
                             f"'uniform', got {distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return self._draw("uniform", shape, dtype, minval=-limit, maxval=limit)
        if self.distribution == "truncated_normal":
            return self._draw("truncated_normal", shape, dtype, stddev=math.sqrt(variance) / _TRUNCATED_STDDEV)
        return self._draw("normal", shape, dtype, stddev=math.sqrt(variance))

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, **super().get_config()}


def _variance_scaling(name, scale, mode, distribution):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": f"VarianceScaling(scale={scale}, mode={mode!r}, "
                                                      f"distribution={distribution!r})."})


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")


class Orthogonal(_Seeded):
    """A (semi-)orthogonal matrix times ``gain``, from the QR decomposition of a normal draw (Keras 3's recipe)."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the shape must have rank >= 2, got {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        draw = np.asarray(self._draw("normal", (max(rows, cols), min(rows, cols)), dtypes.float64), np.float64)
        q, r = np.linalg.qr(draw)  # a host QR: the same numbers on either device
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return _cast(constant(self.gain * q.reshape(shape)), dtype or dtypes.float32)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform, "orthogonal": Orthogonal,
    "uniform": RandomUniform, "normal": RandomNormal,  # Keras's short aliases (Embedding's default is 'uniform')
}
_BY_CLASS = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier):
    """An initializer from a name (``'glorot_uniform'`` or ``'GlorotUniform'``), a config dict, an instance or a
    callable ``fn(shape, dtype=None)``.

    Raises:
        ValueError: an unknown name; the message lists the known ones.
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return type(get(identifier["class_name"])).from_config(identifier.get("config", {}))
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_CLASS.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown initializer: {identifier!r}. Known initializers: "
                             f"{', '.join(sorted(_BY_NAME))}")
        return cls()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")


def serialize(initializer):
    if isinstance(initializer, Initializer):
        return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
    return initializer
