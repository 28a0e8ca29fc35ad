"""Speed benchmarks of esci-tf against Hugging Face transformers + PyTorch (see bench/README.md)."""

import os

# Keep TensorFlow's C++ INFO lines (XLA, oneDNN, tf.data) out of the benchmark output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
