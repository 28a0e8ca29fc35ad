"""SavedModel export for TF Serving: raw product fields in, ESCI probabilities and ranking score out."""

from esci_tf.serving.export import build_archive, export_saved_model
