"""SavedModel export for TF Serving: text in, ESCI probabilities and ranking score out."""

from esci_tf.serving.export import ScoringModule, export_saved_model
