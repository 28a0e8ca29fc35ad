"""The XLM-RoBERTa family's registry entry.

>>> ENTRY.uses_segment_ids, ENTRY.hf_prefix, ENTRY.hf_vocab_file
(False, 'roberta.', 'sentencepiece.bpe.model')
"""

from esci_tf.models.family import BackboneEntry
from esci_tf.models.xlm_roberta.packing import pair_layout

ENTRY = BackboneEntry(
    name="xlm_roberta",
    backbone="keras_hub.models:XLMRobertaBackbone",
    preset_backbone="keras_hub.models:XLMRobertaBackbone",
    tokenizer="keras_hub.models:XLMRobertaTokenizer",
    hf_tokenizer="esci_tf.models.xlm_roberta.tokenizer:from_hf_dir",
    hf_vocab_file="sentencepiece.bpe.model",
    converter="esci_tf.models.xlm_roberta.convert",
    uses_segment_ids=False,
    hf_model_types=("xlm-roberta",),
    hf_prefix="roberta.",
    ignored_prefixes=("lm_head.", "classifier.", "qa_outputs.", "pooler."),
    ignored_keys=("embeddings.position_ids",),
    preset_tokenizer="keras_hub.models:XLMRobertaTokenizer",
    demo_tokenizer="esci_tf.models.xlm_roberta.tokenizer:demo_tokenizer",
    pair_layout=pair_layout,
)
