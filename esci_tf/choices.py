"""The fixed sets of values some settings take, defined without TensorFlow.

The flag modules (trainers/flags) build their enum flags from these, so parsing flags, `--help`
and the settings checks that need no data run before TensorFlow is imported (under a second
instead of ~8 s); the modules that implement each choice import its tuple from here.

>>> BACKBONE_NAMES[:2], STRATEGY_NAMES[:3], PRECISION_POLICIES
(('bert', 'xlm_roberta'), ('auto', 'cpu', 'default'), ('float32', 'mixed_bfloat16'))
"""

TASKS = ("1", "2", "3", "all")  # KDD Cup 2022 tasks whose pairs to read (esci_tf.data.reader)
SPLITS = ("train", "test")  # the official files' split column
ON_BAD_ROWS = ("raise", "skip")  # what bad input rows do: stop the command, or are dropped and reported
BACKBONE_NAMES = ("bert", "xlm_roberta", "deberta_v3", "rembert")  # esci_tf/models/<name>/, registry order
POOLINGS = ("cls", "weighted_layers", "mean")  # esci_tf.models.cross_encoder
PRECISION_POLICIES = ("float32", "mixed_bfloat16")  # esci_tf.models.precision
LISTWISE_LOSSES = ("pairwise_logistic", "list_mle")  # esci_tf.training.listwise
BI_ENCODER_LOSSES = ("pairwise_logistic", "cosent")  # esci_tf.training.bi_encoder_training; the first is the default
STRATEGY_NAMES = ("auto", "cpu", "default", "tpu", "mirrored", "multi_worker")  # esci_tf.training.strategy
# The --backbone_config keys of each family: its backbone class's constructor arguments (keras-hub's
# Backbone base and dtype excluded), listed here so the check of a config needs no keras-hub import;
# tests/test_training_config.py reads them off the classes and fails when the two differ.
BACKBONE_CONFIG_KEYS = {
    "bert": ("hidden_activation", "vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
             "dropout", "max_sequence_length", "num_segments"),
    "xlm_roberta": ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "dropout",
                    "max_sequence_length"),
    "deberta_v3": ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "dropout",
                   "max_sequence_length", "bucket_size"),
    "rembert": ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
                "input_embedding_dim", "dropout", "max_sequence_length", "num_segments", "activation",
                "layer_norm_epsilon"),
}
PREDICT_RUNTIMES = ("keras", "tflite", "tflite_int8")  # trainers.predict --runtime (esci_tf.rankers.tflite)
