"""Whether this machine has a TPU of its own, answered without importing TensorFlow.

A Cloud TPU VM (or Colab TPU runtime) sets TPU_NAME, TPU_ACCELERATOR_TYPE or COLAB_TPU_ADDR, or
has the TPU chips as /dev/accel* (v2-v4) or /dev/vfio/<n> (v5e and later) devices. Reading the
environment and /dev takes microseconds, so `--strategy=tpu` on a machine without a TPU is
refused before TensorFlow (seconds to import) is loaded; esci_tf.training.strategy asks the
same question before it looks for a TPU through TensorFlow.
"""

import glob
import os

TPU_VARIABLES = ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "COLAB_TPU_ADDR")
TPU_DEVICES = ("/dev/accel*", "/dev/vfio/[0-9]*")


def has_local_tpu() -> bool:
    """True on a Cloud TPU VM / when TPU settings are in the environment."""
    if any(name in os.environ for name in TPU_VARIABLES):
        return True
    return any(glob.glob(pattern) for pattern in TPU_DEVICES)
