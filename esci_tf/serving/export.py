"""Exports a trained CrossEncoder and its PairPreprocessor as one SavedModel for TF Serving.

Signatures:
- `serving_default(query, product_text)`: string tensors [B] -> score [B], probabilities [B, 4]
  (E, S, C, I), logits [B, 4]. `product_text` is the template output of
  `esci_tf.data.template.format_pairs` (language token, fields, optional entity markers); the
  settings the model was trained with are written next to the SavedModel as
  assets.extra/template.json so clients format products the same way.
- `score_tokens(token_ids, segment_ids, padding_mask)`: int32 [B, L] -> the same outputs, for
  callers that tokenise themselves (or read TFRecords).

Tokenisation inside the graph is the PairPreprocessor itself, the one definition used for
TFRecords and prediction.

Example:
    module = ScoringModule(model, preprocessor)
    export_saved_model(module, "/tmp/esci_export", template={"field_style": "text"})
    served = tf.saved_model.load("/tmp/esci_export").signatures["serving_default"]
    served(query=tf.constant(["red shoes"]), product_text=tf.constant(["[L_US] color: red ..."]))
"""

import os

import tensorflow as tf

from esci_tf import files
from esci_tf.labels import GAINS

TEMPLATE_ASSET = os.path.join("assets.extra", "template.json")


class ScoringModule(tf.Module):
    """A CrossEncoder with its preprocessing, as tf.functions with serving signatures."""

    def __init__(self, model, preprocessor):
        super().__init__(name="esci_scorer")
        self.model = model
        self.preprocessor = preprocessor
        self.gains = tf.constant(GAINS)
        length = preprocessor.max_length
        self.score_tokens = tf.function(
            self._score_tokens,
            input_signature=[
                tf.TensorSpec([None, length], tf.int32, name="token_ids"),
                tf.TensorSpec([None, length], tf.int32, name="segment_ids"),
                tf.TensorSpec([None, length], tf.int32, name="padding_mask"),
            ],
        )
        self.serve = tf.function(
            self._serve,
            input_signature=[
                tf.TensorSpec([None], tf.string, name="query"),
                tf.TensorSpec([None], tf.string, name="product_text"),
            ],
        )

    def _outputs(self, features):
        logits = tf.cast(self.model(features, training=False), tf.float32)
        probabilities = tf.nn.softmax(logits, axis=-1)
        score = tf.linalg.matvec(probabilities, self.gains)
        return {"score": score, "probabilities": probabilities, "logits": logits}

    def _score_tokens(self, token_ids, segment_ids, padding_mask):
        return self._outputs(
            {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
        )

    def _serve(self, query, product_text):
        return self._outputs(self.preprocessor(query, product_text))


def export_saved_model(module: ScoringModule, export_dir: str, template: dict | None = None):
    """Writes `module` as a SavedModel (local or gs://) with both signatures; returns export_dir."""
    tf.saved_model.save(
        module,
        export_dir,
        signatures={"serving_default": module.serve, "score_tokens": module.score_tokens},
    )
    if template is not None:
        files.write_json(os.path.join(export_dir, TEMPLATE_ASSET), dict(sorted(template.items())))
    return export_dir
