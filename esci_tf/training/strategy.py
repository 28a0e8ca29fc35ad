"""tf.distribute strategies by name: tpu, mirrored, multi_worker, cpu/default, auto."""

import tensorflow as tf
from absl import logging

from esci_tf.choices import STRATEGY_NAMES  # defined without TensorFlow, for the flags
from esci_tf.training.tpu_machine import has_local_tpu


def _connect_tpu(tpu_address):
    """Resolves, connects to and initialises a TPU (a single host or a pod slice)."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _find_tpu_resolver(tpu_address):
    """A TPUClusterResolver when a TPU is reachable, else None."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        if not resolver.master() and not tf.config.list_logical_devices("TPU"):
            return None
        return resolver
    except (ValueError, RuntimeError, KeyError, tf.errors.NotFoundError) as error:
        logging.info("no TPU found (%s)", error)
        return None


def get_strategy(name: str = "auto", tpu_address=None, devices=None):
    """A tf.distribute.Strategy.

    name: "tpu" (TPUClusterResolver(tpu_address): "local", a TPU name or grpc:// address;
    pods are handled by the resolver), "mirrored" (MirroredStrategy over `devices`, default
    all GPUs, else the logical CPUs), "multi_worker" (MultiWorkerMirroredStrategy from
    TF_CONFIG), "cpu"/"default" (the default strategy: one device), "auto" (TPU if one is
    found, else MirroredStrategy when there are GPUs, else default).
    """
    if name not in STRATEGY_NAMES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGY_NAMES)}, got {name!r}")
    if name == "tpu":
        return _connect_tpu(tpu_address)
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name in ("cpu", "default"):
        return tf.distribute.get_strategy()
    # auto
    if tpu_address is not None or has_local_tpu():
        resolver = _find_tpu_resolver(tpu_address)
        if resolver is not None:
            return _connect_tpu(tpu_address)
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def split_cpu(num_devices: int):
    """Splits the physical CPU into `num_devices` logical devices (for tests of strategies).

    Must run before TensorFlow initialises its devices (before any op runs); raises
    RuntimeError naming that rule otherwise. Returns the logical CPU device names.
    """
    if num_devices < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as error:
        raise RuntimeError(
            "split_cpu must run before TensorFlow initialises its devices "
            f"(before any tensor op): {error}"
        ) from error
    return [d.name for d in tf.config.list_logical_devices("CPU")]
