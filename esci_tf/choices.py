"""The fixed sets of values some settings take, defined without TensorFlow.

The flag modules (trainers/flags) build their enum flags from these, so parsing flags, `--help`
and the settings checks that need no data run before TensorFlow is imported (under a second
instead of ~8 s); the modules that implement each choice import its tuple from here.

>>> BACKBONE_NAMES[:2], STRATEGY_NAMES[:3], PRECISION_POLICIES
(('bert', 'xlm_roberta'), ('auto', 'cpu', 'default'), ('float32', 'mixed_bfloat16'))
"""

BACKBONE_NAMES = ("bert", "xlm_roberta", "deberta_v3", "rembert")  # esci_tf/models/<name>/, registry order
POOLINGS = ("cls", "weighted_layers", "mean")  # esci_tf.models.cross_encoder
PRECISION_POLICIES = ("float32", "mixed_bfloat16")  # esci_tf.models.precision
LISTWISE_LOSSES = ("pairwise_logistic", "list_mle")  # esci_tf.training.listwise
STRATEGY_NAMES = ("auto", "cpu", "default", "tpu", "mirrored", "multi_worker")  # esci_tf.training.strategy
