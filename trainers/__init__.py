"""trainers: command-line entry points of esci-tf."""

import esci_tf  # noqa: F401  (quiets TensorFlow logging before it is imported)
