#!/usr/bin/env bash
# Set up esci-tf on a Cloud TPU VM worker (setup_workers.sh runs it on every worker of a slice,
# --worker=all). The code: an extracted checkout in DIR (setup_workers.sh ships one), or
# REPO_URL (and REF) to clone. Makes DIR/.venv with the package and tensorflow-tpu, then
# checks that TensorFlow sees the TPU (on a pod slice's workers: that the TPU runtime is there).
set -euo pipefail
DIR="${DIR:-$HOME/esci-tf}"
if [ ! -f "$DIR/setup.py" ]; then
  [ -n "${REPO_URL:-}" ] || { echo "setup_tpu_vm.sh: no checkout in $DIR; set REPO_URL to clone one" >&2; exit 2; }
  git clone ${REF:+--branch "$REF"} "$REPO_URL" "$DIR"
fi
cd "$DIR"
if ! command -v python3.11 >/dev/null; then  # the TPU images ship Ubuntu's python3.10
  sudo apt-get update -q
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.11 python3.11-venv
fi
[ -x .venv/bin/python ] || python3.11 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# tensorflow-tpu needs libtpu, which Google publishes outside PyPI.
.venv/bin/pip install -q -e '.[tpu]' -f https://storage.googleapis.com/libtpu-tf-releases/index.html
.venv/bin/python -c "import esci_tf, tensorflow as tf; print('esci-tf ready on', '$(hostname)', '; TF', tf.__version__)"
if [ "${CHECK_TPU:-1}" = 1 ]; then
  .venv/bin/python - <<'PY'
import tensorflow as tf
resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
tf.config.experimental_connect_to_cluster(resolver)
tf.tpu.experimental.initialize_tpu_system(resolver)
print("TPU devices:", tf.config.list_logical_devices("TPU"))
PY
fi
