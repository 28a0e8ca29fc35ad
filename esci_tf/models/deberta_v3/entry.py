"""The DeBERTa-v3 family's registry entry (Hugging Face model_type "deberta-v2").

>>> ENTRY.uses_segment_ids, ENTRY.hf_prefix, ENTRY.hf_vocab_file
(False, 'deberta.', 'spm.model')
"""

from esci_tf.models.family import BackboneEntry

ENTRY = BackboneEntry(
    name="deberta_v3",
    backbone="keras_hub.models:DebertaV3Backbone",
    preset_backbone="keras_hub.models:DebertaV3Backbone",
    tokenizer="keras_hub.models:DebertaV3Tokenizer",
    hf_tokenizer="esci_tf.models.deberta_v3.tokenizer:from_hf_dir",
    hf_vocab_file="spm.model",
    converter="esci_tf.models.deberta_v3.convert",
    uses_segment_ids=False,
    hf_model_types=("deberta-v2",),
    hf_prefix="deberta.",
    # Heads a DeBERTa checkpoint may carry (MLM, replaced-token detection, classifiers).
    ignored_prefixes=("lm_predictions.", "mask_predictions.", "cls.", "pooler.", "classifier.",
                      "qa_outputs."),
    ignored_keys=("embeddings.position_ids",),
    preset_tokenizer="keras_hub.models:DebertaV3Tokenizer",
)
