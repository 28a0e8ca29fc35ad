"""Train the embedded demo SentencePiece vocabulary (esci_tf/assets/demo_spm.model).

A small unigram model over synthetic us/es/jp ESCI text (esci_tf.data.synthetic), with the
control pieces XLM-R's SentencePiece model has (<unk>=0, <s>=1, </s>=2, no <pad>), so that
keras_hub.models.XLMRobertaTokenizer loads it and applies the fairseq id offset as for the
real XLM-R vocabulary. Retrain with `python -m trainers.demo_vocab`; same text, same file.
"""

import io
import os
import re

import sentencepiece as spm

from esci_tf.data.synthetic import generate_esci
from esci_tf.preprocessing.template import format_pairs
from esci_tf.special_tokens import ALL_SPECIAL_TOKENS

DEMO_SPM_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "demo_spm.model")
# A target: with hard_vocab_limit=False SentencePiece stops at what the small corpus supports
# (659 pieces with whitespace-split pieces, as XLM-R's).
DEMO_VOCAB_SIZE = 1500
DEMO_NUM_QUERIES = 2000
DEMO_SEED = 1234

_SPECIALS = re.compile("|".join(re.escape(t) for t in sorted(ALL_SPECIAL_TOKENS, key=len, reverse=True)))


def build_corpus(num_queries: int = DEMO_NUM_QUERIES, seed: int = DEMO_SEED) -> list:
    """Deduplicated, sorted training sentences (special tokens removed: they never reach SPM)."""
    examples, products = generate_esci(num_queries=num_queries, seed=seed)
    merged = examples.merge(products, on=["product_id", "product_locale"], how="left")
    queries, texts = format_pairs(merged)  # the text the models are trained on
    lines = {re.sub(r"\s+", " ", _SPECIALS.sub(" ", t)).strip() for t in list(queries) + list(texts)}
    return sorted(line for line in lines if line)


def train_spm(sentences, vocab_size: int = DEMO_VOCAB_SIZE) -> bytes:
    """A serialized unigram SentencePiece model with XLM-R's control pieces."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>",
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return model.getvalue()


def retrain(output: str = DEMO_SPM_PATH, vocab_size: int = DEMO_VOCAB_SIZE) -> bytes:
    """Retrain the demo vocabulary from its fixed corpus and write it to `output`."""
    proto = train_spm(build_corpus(), vocab_size)
    with open(output, "wb") as f:
        f.write(proto)
    return proto
