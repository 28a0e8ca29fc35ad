"""esci-tf: multilingual cross-encoder rankers for the Amazon ESCI product search task."""

import os

# Keep TensorFlow's C++ INFO/WARNING chatter out of command output (errors still show).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
