#!/usr/bin/env bash
# Set up esci-tf on a Cloud TPU VM (run on every worker of a slice: --worker=all).
set -euo pipefail
REPO_URL="${REPO_URL:?set REPO_URL to this repository}"
DIR="${DIR:-$HOME/esci-tf}"
[ -d "$DIR" ] || git clone "$REPO_URL" "$DIR"
cd "$DIR"
python3.11 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[tpu]'
.venv/bin/python - <<'PY'
import tensorflow as tf
resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
tf.config.experimental_connect_to_cluster(resolver)
tf.tpu.experimental.initialize_tpu_system(resolver)
print("TPU devices:", tf.config.list_logical_devices("TPU"))
PY
