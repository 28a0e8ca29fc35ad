"""Keep a SentencePiece tokenizer's model alive across tf.random.set_seed.

tensorflow-text keeps a SentencepieceTokenizer's model in a resource that its eager kernel owns
(tensorflow-text's own TODO b/318839908: "switch to a ref-counted resource instead of this
kernel-owned resource"). tf.random.set_seed (and keras.utils.set_random_seed, which every
trainers.fit run calls) clears TensorFlow's eager kernel caches, and with the kernel the
resource goes: a tokenizer made before a seed was set then fails with "Resource
localhost/_0_SentencepieceOp/... does not exist". `keep_model_resource` re-creates the model
resource under a shared name (a hash of the model), which the resource manager keeps for the
process; tokenizers of the same model share it, and a SavedModel re-creates it at load.

>>> import tensorflow as tf
>>> from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
>>> tokenizer = keep_model_resource(load_tokenizer("xlm_roberta"))
>>> ids = tf.function(tokenizer)(tf.constant(["red shoes"]))
>>> tf.random.set_seed(0)
>>> tf.function(tokenizer)(tf.constant(["red shoes"])).to_list() == ids.to_list()
True
"""

import hashlib

import tensorflow as tf
from tensorflow_text.python.ops import sentencepiece_tokenizer as sentencepiece_ops


class _SharedModelResource(sentencepiece_ops._SentencepieceModelResource):
    """tensorflow-text's model resource, created under a shared name instead of kernel-owned."""

    def __init__(self, model: bytes, name=None):
        self._shared_name = "esci_tf_sentencepiece_" + hashlib.sha256(model).hexdigest()[:32]
        super().__init__(model, name)

    def _create_resource(self):
        with tf.name_scope(self._name or "SentenceTokenizerInitializer"):
            return sentencepiece_ops.gen_sentencepiece_tokenizer.sentencepiece_op(
                model=self._model, shared_name=self._shared_name)


def keep_model_resource(tokenizer):
    """`tokenizer` (a keras-hub tokenizer) with its SentencePiece model resource under a shared
    name; tokenizers without one (WordPiece) are returned as they are. Call it again after
    anything that rebuilds the tensorflow-text tokenizer (keras-hub's set_proto)."""
    sentence_piece = getattr(tokenizer, "_sentence_piece", None)
    resource = getattr(sentence_piece, "_model_resource", None)
    if resource is None or isinstance(resource, _SharedModelResource):
        return tokenizer
    sentence_piece._model_resource = _SharedModelResource(bytes(tokenizer.proto), resource._name)
    return tokenizer
