"""The BERT family's registry entry.

>>> ENTRY.uses_segment_ids, ENTRY.hf_prefix, ENTRY.hf_vocab_file
(True, 'bert.', 'vocab.txt')
"""

from esci_tf.models.family import BackboneEntry, pooled_dense

ENTRY = BackboneEntry(
    name="bert",
    backbone="esci_tf.models.bert.backbone:HFBertBackbone",
    preset_backbone="keras_hub.models:BertBackbone",
    tokenizer="esci_tf.models.bert.tokenizer:HFBertTokenizer",
    hf_tokenizer="esci_tf.models.bert.tokenizer:from_hf_dir",
    hf_vocab_file="vocab.txt",
    converter="esci_tf.models.bert.convert",
    uses_segment_ids=True,
    hf_model_types=("bert",),
    hf_prefix="bert.",
    ignored_prefixes=("cls.", "classifier.", "qa_outputs."),
    ignored_keys=("embeddings.position_ids",),
    preset_tokenizer="keras_hub.models:BertTokenizer",
    pooler_layer=pooled_dense,
)
