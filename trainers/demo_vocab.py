"""Retrain the demo SentencePiece vocabulary (esci_tf/assets/demo_spm.model) from its fixed
corpus (esci_tf.data.demo_vocab); same text, same file:

    python -m trainers.demo_vocab [--output=...] [--vocab_size=...]
"""

import sentencepiece as spm
from absl import flags

from esci_tf import cli
from esci_tf.data.demo_vocab import DEMO_SPM_PATH, DEMO_VOCAB_SIZE, retrain

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """The command-line flags; defined only when run as a program (no clash on import)."""
    flags.DEFINE_string("output", DEMO_SPM_PATH, "Where to write the SentencePiece model.",
                        flag_values=flag_values)
    flags.DEFINE_integer("vocab_size", DEMO_VOCAB_SIZE, "Target number of pieces.", flag_values=flag_values)


def main(argv=()):
    del argv
    proto = retrain(FLAGS.output, FLAGS.vocab_size)
    size = spm.SentencePieceProcessor(model_proto=proto).vocab_size()
    print(f"wrote {FLAGS.output}: {size} pieces, {len(proto)} bytes")


if __name__ == "__main__":
    define_flags()
    cli.run(main, "trainers.demo_vocab")
