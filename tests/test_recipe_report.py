"""recipe report.png: every stage appears, with numbers or named as having none."""

from esci_tf.recipe import report

INTERVAL = {"mean": 0.85, "low": 0.83, "high": 0.87, "num_queries": 10}
REPORT = {
    "stages": {"folds": {"ndcg": {"all": INTERVAL, "long_lists": INTERVAL}},
               "distill": {"ndcg": "trained on every pair: no out-of-fold scores"},
               "pseudo": {"ndcg": "trained on every pair: no out-of-fold scores"}},
    "members": {"bi_encoder": {"all": INTERVAL}, "zero_shot": {"all": INTERVAL}},
    "added": {"folds - zero_shot": {"all": {"mean": -0.01, "low": -0.02, "high": 0.005}}},
    "ensemble": {"weights": {"all": {"bi_encoder": 1.0}}, "chosen": "best member"},
    "timing_seconds": {"folds": 510.0, "total": 2080.0},
}


def test_caption_names_unscored_stages_the_final_ranker_and_minutes():
    lines = report._caption(REPORT)
    assert lines[0].startswith("stages distill, pseudo: trained on every pair")
    assert lines[1] == "R/final: best member (all: bi_encoder 1)"
    assert lines[2] == "minutes: folds 8.5, total 34.7"


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "report.png"
    assert report.plot(REPORT, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_caption_gives_the_out_of_fold_micro_f1_of_tasks_2_and_3():
    decided = {"stage": "pseudo", "out_of_fold": {"task2": {"argmax": 0.7, "fitted": 0.72},
                                                  "task3": {"argmax": 0.8, "fitted": 0.81}}}
    lines = report._caption({**REPORT, "decisions": decided})
    assert lines[2] == ("micro-F1 out of fold (stage pseudo): task 2 argmax 0.700, fitted 0.720; "
                        "task 3 argmax 0.800, fitted 0.810")
