"""trainers.demo: a rerun on its finished --output_dir says it trained nothing and keeps the run's
own timing in metrics.json (it used to reprint the results as new and write 0 steps/s)."""

import json

import pytest

from run_fixtures import TINY_CONFIG
from trainers import demo

TINY_DEMO = ("--synthetic_queries=24", "--task=1",  # 3 eval queries (evaluation.MIN_QUERIES)
             "--eval_fraction=0.25", f"--backbone_config={TINY_CONFIG}",
             "--nocross_attention", "--max_length=24", "--batch_size=8", "--epochs=1", "--noprogress_bar",
             "--num_shards=1")


@pytest.mark.slow  # trains a tiny demo
def test_a_rerun_reports_the_finished_run_and_keeps_its_timing(tmp_path, capsys):
    args = (*TINY_DEMO, f"--output_dir={tmp_path}")
    first = demo.run_demo(args)
    printed = capsys.readouterr().out
    assert "nothing was trained now" not in printed and "demo NDCG" in printed
    assert first["timing"]["steps_per_second"] > 0

    again = demo.run_demo(args)
    printed = capsys.readouterr().out
    assert "already holds the finished demo run; nothing was trained now" in printed
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["timing"]["reused_finished_run"] is True
    for key in ("steps_per_second", "examples_per_second", "train_seconds", "data_seconds"):
        assert saved["timing"][key] == first["timing"][key] > 0, key
    assert again["final"] == first["final"] and again["history"] == first["history"]
