"""The RemBERT family's registry entry (its backbone module is imported only when used).

>>> ENTRY.uses_segment_ids, ENTRY.hf_prefix, ENTRY.preset_tokenizer
(True, 'rembert.', None)
"""

from esci_tf.models.family import BackboneEntry, pooled_dense

ENTRY = BackboneEntry(
    name="rembert",
    backbone="esci_tf.models.rembert.backbone:RemBertBackbone",
    preset_backbone="esci_tf.models.rembert.backbone:RemBertBackbone",
    tokenizer="esci_tf.models.rembert.tokenizer:RemBertTokenizer",
    hf_tokenizer="esci_tf.models.rembert.tokenizer:from_hf_dir",
    hf_vocab_file="sentencepiece.model",
    converter="esci_tf.models.rembert.convert",
    uses_segment_ids=True,
    hf_model_types=("rembert",),
    hf_prefix="rembert.",
    ignored_prefixes=("cls.", "classifier.", "qa_outputs.", "lm_head."),
    # transformers versions before 4.31 saved this position buffer; it holds no weights.
    ignored_keys=("embeddings.position_ids",),
    pooler_layer=pooled_dense,
)
