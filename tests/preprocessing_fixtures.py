"""Tiny SentencePiece vocabularies, written as Hugging Face tokenizer directories, for tests."""

import functools
import io
import json
import os

import sentencepiece as spm

from esci_tf.data.demo_vocab import build_corpus

# Per backbone: the Hugging Face file name, the control pieces, and tokenizer_config.json.
SPM_KINDS = {
    "xlm_roberta": (
        "sentencepiece.bpe.model",
        dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1),
        {"tokenizer_class": "XLMRobertaTokenizer"},
    ),
    "deberta_v3": (
        "spm.model",
        dict(pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
             eos_piece="[SEP]", unk_piece="[UNK]"),
        {"tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": False},
    ),
    # RemBERT's model has [PAD] first, the unknown piece at id 2 (transformers' RemBertTokenizer
    # assumes that) and [CLS]/[SEP]/[MASK] as ordinary (user-defined) pieces.
    "rembert": (
        "sentencepiece.model",
        dict(pad_id=0, bos_id=1, unk_id=2, eos_id=-1, bos_piece="<s>", pad_piece="[PAD]", unk_piece="[UNK]",
             user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"]),
        {"tokenizer_class": "RemBertTokenizer", "cls_token": "[CLS]", "sep_token": "[SEP]",
         "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
         "bos_token": "[CLS]", "eos_token": "[SEP]", "do_lower_case": False},
    ),
}

EXTRA_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Zapatillas de running para mujer, talla 38, color azul marino.",
    "ワイヤレスイヤホン Bluetooth 5.3 防水 長時間再生",
]


@functools.lru_cache(maxsize=1)
def small_corpus():
    return tuple(build_corpus(num_queries=60, seed=3)) + tuple(EXTRA_TEXT)


def write_spm_dir(kind: str, directory: str, vocab_size: int = 300) -> str:
    """Train a tiny unigram model with `kind`'s control pieces and save it as an HF dir."""
    file_name, pieces, tokenizer_config = SPM_KINDS[kind]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(small_corpus()), model_writer=model, model_type="unigram",
        vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0, num_threads=1,
        minloglevel=2, **pieces)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, file_name), "wb") as f:
        f.write(model.getvalue())
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config, f)
    return directory
