"""run_experiment on frames a caller brings: shards built once per content, runs without an eval set,
one final evaluation with --noselect_best."""

import json
import logging
import os
import shutil

import pandas as pd
import pytest

from esci_tf.preprocessing.template import TemplateSettings
from esci_tf.rankers import load_ranker
from esci_tf.training.config import ConfigError, RunConfig
from esci_tf.training.run_data import DATA_DIR, DATA_INFO_FILE, SplitFrames
from esci_tf.training.train_lib import CHECKPOINT_DIR, HISTORY_FILE, run_experiment

from run_fixtures import loaded_synthetic_frame

pytestmark = pytest.mark.slow  # each case trains a tiny model

TINY = {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return loaded_synthetic_frame(12, 0, str(tmp_path_factory.mktemp("files")))


def _config(output_dir, **changes):
    return RunConfig.from_flat({"backbone": "xlm_roberta", "backbone_config": TINY, "max_length": 24,
                                "batch_size": 8, "steps": 4, "learning_rate": 1e-3, "num_shards": 1,
                                "progress_bar": False, "strategy": "cpu", "output_dir": str(output_dir),
                                **changes})


def _split(frame):
    is_eval = (frame["query_id"] % 3 == 0).to_numpy()
    return frame[~is_eval].reset_index(drop=True), frame[is_eval].reset_index(drop=True)


def test_frames_build_once_per_content_and_evaluate_once(frame, tmp_path, caplog):
    train, held_out = _split(frame)
    config = _config(tmp_path, select_best=False, eval_every_steps=1)
    metrics = run_experiment(config, frames=SplitFrames(train, held_out, TemplateSettings()))
    assert [h["step"] for h in metrics["history"]] == [4]  # one evaluation, of the final model
    info_path = tmp_path / DATA_DIR / DATA_INFO_FILE
    built = json.loads(info_path.read_text())
    assert built["info"]["num_train"] == len(train) and built["info"]["num_eval"] == len(held_out)
    stamp = os.path.getmtime(info_path)
    run_experiment(config.replace(eval_every_steps=2), frames=SplitFrames(train, held_out, TemplateSettings()))
    assert os.path.getmtime(info_path) == stamp  # same frames: the shards are reused
    fewer = train.iloc[: len(train) // 2]
    with pytest.raises(ConfigError, match=r"--frames sha256 \w+ -> sha256 \w+; resume it"):
        run_experiment(config, frames=SplitFrames(fewer, held_out, TemplateSettings()))  # not resumed
    shutil.rmtree(tmp_path / CHECKPOINT_DIR)  # a fresh start in the same directory
    with caplog.at_level(logging.INFO):
        run_experiment(config, frames=SplitFrames(fewer, held_out, TemplateSettings()))
    assert json.loads(info_path.read_text())["info"]["num_train"] == len(fewer)  # other content: rebuilt
    assert "built from other inputs or settings (frames changed)" in caplog.text


def test_a_run_without_eval_rows_keeps_its_final_model(frame, tmp_path):
    metrics = run_experiment(_config(tmp_path), frames=SplitFrames(frame, frame.iloc[:0], TemplateSettings()))
    assert metrics["final"] is None and metrics["history"] == []
    assert json.loads((tmp_path / "best_model.json").read_text()) == {"ndcg": None, "step": 4, "selected": "final"}
    assert (tmp_path / HISTORY_FILE).read_text() == ""
    probabilities = load_ranker(str(tmp_path)).probabilities(frame.head(5))
    assert probabilities.shape == (5, 4)
    pd.testing.assert_series_equal(pd.Series(probabilities.sum(axis=1)), pd.Series([1.0] * 5), atol=1e-5,
                                   check_dtype=False)


def test_the_data_cache_of_files_is_keyed_by_their_content(tmp_path, caplog):
    from esci_tf.data.synthetic import write_esci_files
    from esci_tf.training.run_data import prepare_run_data
    from esci_tf.training.task import RankingTask

    examples, products = write_esci_files(32, 0, str(tmp_path / "files"))  # half the rows: still 3+ eval queries
    config = _config(tmp_path / "run", examples=examples, products=products, task="all", eval_fraction=0.25)
    preprocessor = RankingTask(config).build_preprocessor()
    first = prepare_run_data(config, preprocessor, show_progress=False)
    info_path = tmp_path / "run" / DATA_DIR / DATA_INFO_FILE
    stamp = os.path.getmtime(info_path)
    assert prepare_run_data(config, preprocessor, show_progress=False).info == first.info
    assert os.path.getmtime(info_path) == stamp  # same content: reused
    rows = pd.read_parquet(examples)
    rows.iloc[: len(rows) // 2].to_parquet(examples)  # the same path, half the rows
    with caplog.at_level(logging.INFO):
        second = prepare_run_data(config, preprocessor, show_progress=False)
    assert "built from other inputs or settings (examples changed)" in caplog.text
    assert second.num_train + second.num_eval < first.num_train + first.num_eval
    info_path.write_text('{"source": ')  # a cache record that cannot be read is rebuilt, not trusted
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert prepare_run_data(config, preprocessor, show_progress=False).info == second.info
    assert "not valid JSON" in caplog.text


def test_a_change_to_the_text_path_code_rebuilds_the_data_cache(tmp_path, caplog, monkeypatch):
    from esci_tf.data.synthetic import write_esci_files
    from esci_tf.preprocessing import fields_preprocessor
    from esci_tf.training.run_data import prepare_run_data
    from esci_tf.training.task import RankingTask

    examples, products = write_esci_files(8, 0, str(tmp_path / "files"))
    config = _config(tmp_path / "run", examples=examples, products=products, task="all", eval_fraction=0.25)
    preprocessor = RankingTask(config).build_preprocessor()
    prepare_run_data(config, preprocessor, show_progress=False)
    monkeypatch.setattr(fields_preprocessor, "text_path_fingerprint", lambda: "0" * 64)  # e.g. cleaning edited
    with caplog.at_level(logging.INFO):
        prepare_run_data(config, preprocessor, show_progress=False)
    assert "built from other inputs or settings (text_path changed)" in caplog.text
