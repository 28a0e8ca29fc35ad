"""bench/quality: each ablation switches exactly its trick; the plot is optional."""

import dataclasses

import pytest
from bench import quality

TRICK_FIELDS = {
    "label_smoothing": {"label_smoothing"}, "fgm": {"adversarial"}, "awp": {"adversarial"},
    "multi_sample_dropout": {"multi_sample_dropout"}, "weighted_layers": {"pooling"}, "mean_pooling": {"pooling"},
    "cross_attention": {"cross_attention"}, "entity_markers": {"entity_markers"},
    "listwise": {"listwise_loss_weight"},
}


def test_each_ablation_changes_only_its_trick():
    table = quality.ablation_table(0.5)
    assert set(table) == set(TRICK_FIELDS)
    for name, (with_trick, without) in table.items():
        changed = {f.name for f in dataclasses.fields(with_trick)
                   if getattr(with_trick, f.name) != getattr(without, f.name)}
        assert changed == TRICK_FIELDS[name], name
        assert with_trick.key() != without.key()
    assert table["awp"][1] == table["fgm"][1]  # shared "no adversarial" run, trained once
    with pytest.raises(Exception, match="--ablations: unknown"):
        quality._subset(["fgm", "dropout"], list(table), "ablations")
    assert table["listwise"][0].listwise_loss_weight == 0.5


def test_plot_is_written_or_skipped(tmp_path):
    interval = {"mean": 0.8, "low": 0.78, "high": 0.82}
    summary = {"methods": {"bm25": interval, "recipe": interval},
               "ablations": {"fgm": {"mean": 0.01, "low": -0.01, "high": 0.03}}}
    path = tmp_path / "quality.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert quality.plot(summary, path) is False and not path.exists()
    else:
        assert quality.plot(summary, path) is True and path.stat().st_size > 0
