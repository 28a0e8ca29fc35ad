"""BiEncoder: query and product embedded apart by one shared backbone, ranked by their cosine.

Each side is packed as one segment ([CLS] text [SEP]), embedded by the backbone, mean-pooled
over its real tokens and L2-normalised; the score is the cosine of the two embeddings. This is
how sentence encoders such as all-MiniLM-L6-v2 were pretrained, so it starts from the strong
zero-shot cosine, and a fine-tune on ESCI lists (esci_tf.training.bi_encoder_training) moves it
toward the ESCI gains. Inputs: int32 [B, Lq] "query_token_ids"/"query_padding_mask" and
[B, Lp] "product_token_ids"/"product_padding_mask" (segment ids are all 0).

>>> import numpy as np
>>> model = build_bi_encoder("bert", backbone_config=dict(vocabulary_size=50, num_layers=2, num_heads=2,
...     hidden_dim=16, intermediate_dim=32, max_sequence_length=16))
>>> ids = np.array([[1, 5, 2, 0]], "int32"); mask = (ids > 0).astype("int32")
>>> score = model({"query_token_ids": ids, "query_padding_mask": mask,
...                "product_token_ids": ids, "product_padding_mask": mask})
>>> [round(float(s), 4) for s in score]  # a text against itself
[1.0]
"""

import keras
from keras import ops

from esci_tf.models import checkpoints, registry
from esci_tf.models.heads import masked_mean
from esci_tf.models.kernels import KERNELS, check_kernels
from esci_tf.models.kernels import install as install_kernels

SIDES = ("query", "product")


@keras.saving.register_keras_serializable(package="esci_tf")
class BiEncoder(keras.Model):
    """Cosine of mean-pooled embeddings of the query and the product (see the module docstring)."""

    def __init__(self, backbone, backbone_name=None, kernels=KERNELS, **kwargs):
        super().__init__(**kwargs)
        entry = registry.get_entry(backbone_name) if backbone_name else registry.entry_for_backbone(backbone)
        self.backbone = backbone
        self.backbone_name = entry.name
        self.uses_segment_ids = entry.uses_segment_ids
        self.kernels = check_kernels(kernels)
        install_kernels(self, self.kernels)
        self.built = True

    def embed(self, token_ids, padding_mask, training=None):
        """float32 [B, hidden] unit-norm mean-pooled embeddings of packed single texts."""
        token_ids, padding_mask = ops.convert_to_tensor(token_ids), ops.convert_to_tensor(padding_mask)
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if self.uses_segment_ids:
            inputs["segment_ids"] = ops.zeros_like(token_ids)
        outputs = self.backbone(inputs, training=training)
        hidden = outputs["sequence_output"] if isinstance(outputs, dict) else outputs  # BERT gives a dict
        pooled = masked_mean(hidden, padding_mask)
        return pooled / ops.maximum(ops.norm(pooled, axis=-1, keepdims=True), 1e-12)

    def call(self, inputs, training=None):
        query = self.embed(inputs["query_token_ids"], inputs["query_padding_mask"], training)
        product = self.embed(inputs["product_token_ids"], inputs["product_padding_mask"], training)
        return ops.sum(query * product, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(backbone=keras.saving.serialize_keras_object(self.backbone),
                      backbone_name=self.backbone_name, kernels=list(self.kernels))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        registry.get_entry(config["backbone_name"]).backbone_class  # registers the backbone class
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def build_bi_encoder(backbone: str, checkpoint: str | None = None, backbone_config: dict | None = None,
                     dtype_policy: str | None = None, kernels=KERNELS) -> BiEncoder:
    """A BiEncoder on a pretrained (`checkpoint`) or random (`backbone_config`) backbone. No
    special tokens are added: each side is plain cleaned text."""
    if (checkpoint is None) == (backbone_config is None):
        raise ValueError("give exactly one of checkpoint (pretrained) and backbone_config (random)")
    check_kernels(kernels)
    entry = registry.get_entry(backbone)
    if checkpoint is not None:
        model = checkpoints.load_backbone(backbone, checkpoint, dtype=dtype_policy)
    else:
        model = entry.backbone_class(**backbone_config, dtype=dtype_policy)
    return BiEncoder(model, backbone_name=entry.name, kernels=kernels, dtype=dtype_policy)
