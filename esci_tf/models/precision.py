"""Mixed precision: which Keras dtype policy to use on a device, and setting it.

Models keep float32 logits (and losses) under any policy; "mixed_bfloat16" computes in
bfloat16 with float32 variables. bfloat16 is fast on TPUs, on GPUs from Ampere on and on
CPUs with AMX; elsewhere float32 is the safe choice.

Example:
>>> recommended_policy("TPU v4")
'mixed_bfloat16'
>>> recommended_policy("cpu", cpu_flags=())
'float32'
"""

import keras
import tensorflow as tf

from esci_tf.choices import PRECISION_POLICIES as POLICIES  # defined without TensorFlow, for the flags
from esci_tf.cpu import cpu_kind


def detect_device_kind() -> str:
    """"tpu", "gpu" or "cpu": the accelerator TensorFlow sees (TPU first)."""
    for kind in ("TPU", "GPU"):
        if tf.config.list_logical_devices(kind):
            return kind.lower()
    return "cpu"


def _gpu_supports_bfloat16():
    for device in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(device).get("compute_capability")
        if capability and tuple(capability) >= (8, 0):
            return True
    return False


def recommended_policy(device_kind: str | None = None, cpu_flags=None) -> str:
    """The dtype policy for a device kind ("tpu...", "gpu...", "cpu"; None: detect).

    `cpu_flags` overrides the /proc/cpuinfo flags (for tests).
    """
    kind = (device_kind or detect_device_kind()).strip().lower()
    if kind.startswith("tpu"):
        return "mixed_bfloat16"
    if kind.startswith("gpu"):
        return "mixed_bfloat16" if _gpu_supports_bfloat16() else "float32"
    if kind.startswith("cpu"):
        return "mixed_bfloat16" if cpu_kind(cpu_flags) == "amx" else "float32"
    raise ValueError(f"unknown device kind {device_kind!r}; expected tpu, gpu or cpu")


def set_precision_policy(policy: str | None = None) -> str:
    """Set the global Keras dtype policy ("float32", "mixed_bfloat16", "auto" or None for
    the recommended one on this machine) and return its name."""
    if policy in (None, "auto"):
        policy = recommended_policy()
    if policy not in POLICIES:
        raise ValueError(f"unknown dtype policy {policy!r}; expected one of {POLICIES} or 'auto'")
    keras.mixed_precision.set_dtype_policy(policy)
    return policy
