"""Embedding: integer indices to dense vectors (rows of a learned table)."""
from .. import errors, initializers, regularizers
from ..ops.array import gather, cast
from ..ops.math import not_equal
from .base import Layer

__all__ = ["Embedding"]


class Embedding(Layer):
    """Turns integer indices into dense vectors: ``embeddings[inputs]``, with ``embeddings`` a learned
    ``(input_dim, output_dim)`` table. The gradient reaches only the rows that were looked up.

    Args:
        input_dim: the vocabulary size; indices must lie in ``[0, input_dim)``.
        output_dim: the length of each vector.
        embeddings_initializer: initializer of the table (Keras's ``'uniform'``: uniform in ``[-0.05, 0.05]``).
        embeddings_regularizer: a regularizer for the table.
        mask_zero: whether index 0 stands for padding; ``compute_mask(inputs)`` then returns ``inputs != 0``
            (the mask is not passed on to later layers automatically). ``input_dim`` should count index 0.

    Input shape:
        integers of any shape ``(batch, ...)``; floating inputs are cast to int32, as Keras does.

    Output shape:
        ``(batch, ..., output_dim)``.

    Raises:
        cuflow.errors.InvalidArgumentError: an index outside ``[0, input_dim)`` (a ``ValueError``).

    Example:

    >>> from cuflow import keras
    >>> layer = keras.layers.Embedding(10, 3)
    >>> layer([[1, 2, 4], [0, 9, 9]]).shape
    TensorShape([2, 3, 3])
    """

    _cast_numeric = False  # indices stay integers

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Embedding: {arg} must be a positive int, got {value!r}")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer, self.embeddings_regularizer)

    def call(self, inputs):
        if inputs.dtype.is_floating or inputs.dtype.is_bool:
            inputs = cast(inputs, "int32")
        elif not inputs.dtype.is_integer:
            raise TypeError(f"Embedding '{self.name}': inputs must be integer indices, got dtype {inputs.dtype.name}")
        try:
            return gather(self.embeddings, inputs)
        except errors.InvalidArgumentError as error:
            raise errors.InvalidArgumentError(
                f"Embedding '{self.name}': every input index must be in [0, input_dim={self.input_dim}), but the "
                f"input of shape {tuple(inputs.shape)} holds one outside ({error})") from None

    def compute_mask(self, inputs, mask=None):
        """``inputs != 0`` when ``mask_zero``, else None."""
        return not_equal(inputs, 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "mask_zero": self.mask_zero}
