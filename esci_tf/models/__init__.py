"""Cross-encoder models: backbone families (one folder each, one table: registry), checkpoint
loading, heads, mixed precision.

>>> from esci_tf.models import build_cross_encoder  # doctest: +SKIP
"""

from esci_tf.models.checkpoints import load_backbone, load_hf_backbone
from esci_tf.models.cross_encoder import (
    CrossEncoder,
    build_cross_encoder,
    multi_sample_dropout_rates,
)
from esci_tf.models.heads import MultiSampleDropout, QueryCrossAttention, WeightedLayerPooling
from esci_tf.models.precision import recommended_policy, set_precision_policy
from esci_tf.models.registry import BACKBONES, get_entry
from esci_tf.models.vocabulary import grow_vocabulary
