#!/usr/bin/env bash
# Install esci-tf in a Colab runtime (TPU or GPU). Run from the repository root.
set -euo pipefail
if [ -n "${COLAB_TPU_ADDR:-}" ] || python -c "import os,sys; sys.exit(0 if os.path.exists('/dev/accel0') else 1)"; then
  # tensorflow-tpu needs libtpu, which Google publishes outside PyPI.
  pip install -q -e '.[tpu]' -f https://storage.googleapis.com/libtpu-tf-releases/index.html
else
  pip install -q -e .
fi
python -c "import esci_tf, tensorflow as tf; print('esci-tf ready; TF', tf.__version__)"
