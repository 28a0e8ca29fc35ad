"""Encoder FLOP counting (matmul FLOPs from the config and real token counts) and the
machine's measured matmul peak, for model FLOP utilisation (MFU)."""

import dataclasses
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class EncoderShape:
    """The sizes that set a transformer encoder's matmul FLOPs."""

    num_layers: int
    hidden_dim: int
    intermediate_dim: int
    num_classes: int = 4

    @classmethod
    def from_hf_config(cls, config: dict, num_classes: int = 4) -> "EncoderShape":
        """From a Hugging Face config.json dict (bert / xlm-roberta keys)."""
        missing = [k for k in ("num_hidden_layers", "hidden_size", "intermediate_size") if k not in config]
        if missing:
            raise ValueError(f"Hugging Face config lacks {missing}")
        return cls(config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"], num_classes)

    @property
    def matmul_params_per_layer(self) -> int:
        """Weights of the per-token matmuls of one layer: Q, K, V, output, two feed-forward."""
        h, i = self.hidden_dim, self.intermediate_dim
        return 4 * h * h + 2 * h * i


def forward_flops(shape: EncoderShape, lengths) -> float:
    """Matmul FLOPs of one forward pass over sequences of the given token lengths.

    Per token and layer 2 * (4 h^2 + 2 h i) (projections and feed-forward); per sequence of
    length l and layer 4 l^2 h (Q K^T and attention x V); per sequence the pooler and the
    classifier 2 (h^2 + 4 h). Embedding lookups, norms and softmax are not matmuls and are
    left out.
    """
    lengths = np.asarray(lengths, dtype=np.float64).reshape(-1)
    if (lengths < 0).any():
        raise ValueError("sequence lengths must be >= 0")
    h = shape.hidden_dim
    dense = 2.0 * shape.num_layers * shape.matmul_params_per_layer * lengths.sum()
    attention = 4.0 * shape.num_layers * h * np.square(lengths).sum()
    head = 2.0 * (h * h + h * shape.num_classes) * len(lengths)
    return float(dense + attention + head)


def train_flops(shape: EncoderShape, lengths) -> float:
    """Forward + backward: 3x the forward matmul FLOPs."""
    return 3.0 * forward_flops(shape, lengths)


def measure_matmul_peak(dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of a [size, size] x [size, size] TensorFlow matmul in `dtype`."""
    import tensorflow as tf

    if size < 1 or repeats < 1:
        raise ValueError(f"peak size and repeats must be >= 1, got {size}, {repeats}")
    a = tf.cast(tf.random.stateless_normal((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((size, size), seed=(3, 4)), dtype)
    # The sum forces the product to be computed; its cost (size^2) is negligible.
    product_sum = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32)))
    product_sum(a, b).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product_sum(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def measure_peaks(size: int, repeats: int = 5) -> dict:
    """{"fp32": FLOP/s, "bf16": FLOP/s} of big TensorFlow matmuls."""
    return {"fp32": measure_matmul_peak("float32", size, repeats),
            "bf16": measure_matmul_peak("bfloat16", size, repeats)}
