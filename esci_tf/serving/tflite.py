"""TFLite (LiteRT) models of a CrossEncoder: the fast CPU serving path (XNNPACK).

What is converted. The backbone and head only: token ids, segment ids and padding mask, int32
[batch, length] -> logits float32 [batch, 4] (signature "serving_default"). Tokenization stays
in the FieldsPreprocessor (its tf-text ops are not TFLite builtins), so the directory carries
the run's preprocessing.json, and a caller encodes rows with that FrameEncoder first
(esci_tf.rankers.tflite). Every model has a fixed shape, one per length bucket: XNNPACK plans a
fixed graph as a few partitions (a dynamic one as many), and the rows of a bucket are cut to its
length (what the padding mask hides changes no score). The batch is fixed too (BATCH_SIZE by
default); the last batch of a bucket is padded with copies of a real row.

Variants (VARIANTS): "float32" (the model's scores within float noise), and "int8":
dynamic-range quantization (tf.lite.Optimize.DEFAULT: int8 weights of every fully connected
layer, activations quantized on the fly), smaller and faster, its scores within the tolerance
tests/test_serving_tflite.py states on real text. The converted graph is a float32 copy of
the model with the kernels that convert (conversion_copy); a bfloat16-trained model included.

Layout, written by `write_tflite` into a SavedModel's version directory (trainers.export
--tflite) or any directory, atomically (esci_tf.files.atomic_path):
    <directory>/tflite/tflite.json          MANIFEST: buckets, batch_size, variants, files,
                                            max_length, locales, converter version
    <directory>/tflite/preprocessing.json   the run's FrameEncoder
    <directory>/tflite/<variant>_<length>.tflite
"""

import os
import tempfile

import numpy as np

from esci_tf import files
from esci_tf.errors import FlagError

TFLITE_DIR = "tflite"
MANIFEST = "tflite.json"
VARIANTS = ("float32", "int8")
BATCH_SIZE = 32
DEFAULT_BUCKETS = (32, 64, 128)  # a run trained without --length_buckets: capped at its max_length
INPUTS = ("token_ids", "segment_ids", "padding_mask")
SIGNATURE = "serving_default"
# The esci_tf.models.kernels of the converted graph: the ones that convert to builtins
# (conversion_copy), of which these two ran faster under XNNPACK than Keras' own on MiniLM.
TFLITE_KERNELS = ("attention", "layer_norm")


def model_file(variant: str, length: int) -> str:
    return f"{variant}_{length}.tflite"


def export_buckets(max_length: int, length_buckets=()) -> tuple:
    """The lengths to convert: the run's --length_buckets (else DEFAULT_BUCKETS) below
    max_length, then max_length, which ends them."""
    kept = sorted({int(b) for b in (length_buckets or DEFAULT_BUCKETS) if int(b) < max_length})
    return tuple(kept) + (int(max_length),)


def run_buckets(model_dir: str, max_length: int) -> tuple:
    """`export_buckets` of a trainers.fit run: its recorded --length_buckets (run_settings.json)."""
    from esci_tf.training.run_settings import SETTINGS_FILE

    settings = files.read_json(os.path.join(model_dir, SETTINGS_FILE), missing_ok=True) or {}
    return export_buckets(max_length, settings.get("length_buckets") or ())


def conversion_copy(model):
    """A float32 copy of `model` (same weights) with TFLITE_KERNELS, the graph that converts: a
    mixed_bfloat16 graph would convert to bfloat16 casts XNNPACK does not run, and the "gelu"
    and "dense" kernels write the GELU with Erf, which TFLite has no builtin for (Keras' own
    GELU converts to TFLite's GELU op)."""
    import keras

    import esci_tf.models  # noqa: F401  (registers the custom layers)

    def to_float32(value):
        if isinstance(value, dict):
            if value.get("class_name") == "DTypePolicy":
                return dict(value, config=dict(value["config"], name="float32"))
            return {key: to_float32(item) for key, item in value.items()}
        if isinstance(value, list):
            return [to_float32(item) for item in value]
        return value

    config = to_float32(keras.saving.serialize_keras_object(model))
    config["config"].pop("preprocessor", None)  # not part of the converted graph
    config["config"]["kernels"] = list(TFLITE_KERNELS)
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def convert(model, length: int, batch_size: int, variant: str) -> bytes:
    """The .tflite bytes of `model` (a conversion_copy) at the fixed shape [batch_size, length]; builtin
    ops only. Converted from a SavedModel of the one signature (the route that freezes the
    Keras variables into constants)."""
    import keras
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    signature = {name: tf.TensorSpec([batch_size, length], tf.int32, name=name) for name in INPUTS}
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, lambda inputs: {"logits": model(dict(inputs), training=False)},
                         input_signature=[signature])
    with tempfile.TemporaryDirectory(prefix="esci_tflite_") as directory:
        archive.write_out(directory, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if variant == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def write_tflite(model, encoder, directory: str, buckets: tuple, batch_size: int = BATCH_SIZE,
                 variants=VARIANTS, locales=None) -> str:
    """Convert `model` (a CrossEncoder) per bucket and variant into <directory>/tflite/ with
    its manifest and `encoder`'s preprocessing.json (atomically: the folder appears whole or
    not at all); `locales`: the run's (None: every locale). Returns the folder."""
    import tensorflow as tf

    buckets = tuple(int(b) for b in buckets)
    if not buckets or list(buckets) != sorted(set(buckets)) or buckets[-1] != encoder.max_length:
        raise ValueError(f"buckets {buckets} must increase and end with max_length={encoder.max_length}")
    source = conversion_copy(model)
    target = files.join(directory, TFLITE_DIR)
    with files.atomic_path(target) as temporary:
        tf.io.gfile.makedirs(temporary)
        encoder.save(temporary)
        for variant in variants:
            for length in buckets:
                with tf.io.gfile.GFile(files.join(temporary, model_file(variant, length)), "wb") as stream:
                    stream.write(convert(source, length, batch_size, variant))
        files.write_json(files.join(temporary, MANIFEST), {
            "buckets": list(buckets), "batch_size": int(batch_size), "variants": list(variants),
            "max_length": int(encoder.max_length), "inputs": list(INPUTS), "signature": SIGNATURE,
            "locales": None if locales is None else list(locales), "tensorflow": tf.__version__,
            "files": {variant: {str(length): model_file(variant, length) for length in buckets} for variant in variants}})
    return target


def find_tflite(model_dir: str, flag: str = "--model_dir") -> str:
    """The tflite folder of `model_dir` (a version directory that holds tflite/, or that folder
    itself); FlagError naming the path and the flags when there is none."""
    for candidate in (files.join(model_dir, TFLITE_DIR), model_dir):
        if os.path.isfile(os.path.join(candidate, MANIFEST)):
            return candidate
    raise FlagError(f"{flag}={model_dir} holds no TFLite models (no {TFLITE_DIR}/{MANIFEST}): --runtime=tflite "
                    f"scores an export version directory written by trainers.export --tflite "
                    f"(<export_dir>/<version>)")


def read_manifest(directory: str) -> dict:
    """tflite.json of a tflite folder, with every model file it names checked present."""
    from esci_tf.errors import DataError

    manifest = files.read_json(os.path.join(directory, MANIFEST))
    for variant, by_length in manifest["files"].items():
        for name in by_length.values():
            if not os.path.isfile(os.path.join(directory, name)):
                raise DataError(f"names {name} ({variant}), which is missing: export the model again with "
                                "trainers.export --tflite", path=os.path.join(directory, MANIFEST))
    return manifest


def bucket_of(lengths: np.ndarray, buckets: tuple) -> np.ndarray:
    """The smallest bucket holding each length (lengths above the largest bucket: ValueError)."""
    lengths = np.asarray(lengths)
    if len(lengths) and lengths.max() > buckets[-1]:
        raise ValueError(f"a pair of {int(lengths.max())} tokens exceeds the largest bucket {buckets[-1]}")
    return np.asarray(buckets)[np.searchsorted(buckets, lengths)]


def merge_buckets(counts: dict, batch_size: int) -> list:
    """[(length to run at, [bucket lengths it takes])]: the buckets holding rows (`counts`:
    {bucket length: rows}) merged into contiguous groups, each run at its longest bucket, so
    that the padded work (batches x batch_size x length) is least. A few rows per bucket (one
    request's 40 pairs over 7 buckets: 7 padded batches) run as one or two batches instead; a
    large chunk keeps every bucket apart."""
    lengths = sorted(length for length, count in counts.items() if count)
    best = [(0, [])]  # best[j]: (cost, groups) of the first j lengths
    for j in range(1, len(lengths) + 1):
        options = []
        for i in range(j):
            rows = sum(counts[length] for length in lengths[i:j])
            cost = best[i][0] + -(-rows // batch_size) * batch_size * lengths[j - 1]
            options.append((cost, best[i][1] + [(lengths[j - 1], lengths[i:j])]))
        best.append(min(options, key=lambda option: option[0]))
    return best[-1][1]


def cpu_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class TFLiteScorer:
    """Logits of encoded pairs through one variant's bucket models, on the LiteRT interpreter
    (ai_edge_litert; XNNPACK, one thread per core). Interpreters load on first use."""

    def __init__(self, directory: str, variant: str = "float32", threads: int | None = None):
        self.directory = directory
        self.manifest = read_manifest(directory)
        if variant not in self.manifest["files"]:
            raise FlagError(f"{directory} holds the TFLite variants {', '.join(self.manifest['files'])}, not {variant}")
        self.variant = variant
        self.buckets = tuple(self.manifest["buckets"])
        self.batch_size = int(self.manifest["batch_size"])
        self.threads = threads or cpu_threads()
        self._runners = {}

    def runner(self, length: int):
        if length not in self._runners:
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError as error:
                raise FlagError(f"--runtime=tflite needs the LiteRT interpreter ({error}): pip install "
                                "ai-edge-litert==2.3.0, or pip install -e '.[tflite]'") from error

            path = os.path.join(self.directory, self.manifest["files"][self.variant][str(length)])
            interpreter = Interpreter(model_path=path, num_threads=self.threads)
            self._runners[length] = interpreter.get_signature_runner(SIGNATURE)
        return self._runners[length]

    def run_batch(self, features: dict, length: int) -> np.ndarray:
        """Logits [n, 4] of n <= batch_size rows already cut to `length` columns (padded to the
        fixed batch with copies of the first row, whose outputs are dropped)."""
        count = len(features["token_ids"])
        padded = {name: np.ascontiguousarray(np.concatenate(
            [features[name], np.repeat(features[name][:1], self.batch_size - count, axis=0)]), np.int32)
            for name in INPUTS}
        return self.runner(length)(**padded)["logits"][:count]

    def logits(self, features: dict) -> np.ndarray:
        """Logits [N, 4] of encoded pairs (int32 [N, max_length] per input), in row order; each
        row runs in the model of its bucket or, where `merge_buckets` saves padded work, of a
        longer one (the padding mask hides the extra columns)."""
        widths = bucket_of(np.asarray(features["padding_mask"]).sum(axis=1), self.buckets)
        logits = np.full((len(widths), 4), np.nan, np.float32)
        counts = {length: int((widths == length).sum()) for length in self.buckets}
        for length, members in merge_buckets(counts, self.batch_size):
            rows = np.flatnonzero(np.isin(widths, members))
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start:start + self.batch_size]
                logits[batch] = self.run_batch({name: np.asarray(features[name])[batch, :length] for name in INPUTS},
                                               length)
        return logits
