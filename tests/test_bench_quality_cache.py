"""bench/quality's ScoreCache: finished fine-tunes are reused only under the same settings."""

import numpy as np
import pytest
from bench import quality

SETTINGS = {name: 1 for name in quality.ALL_CACHE_SETTINGS}


def test_put_then_get_round_trips_and_keys_on_settings_and_rows(tmp_path):
    cache = quality.ScoreCache(tmp_path, SETTINGS)
    rows = np.array([3, 5, 9])
    assert cache.get("recipe", 0, 1, rows) is None
    cache.put("recipe", 0, 1, rows, np.array([0.1, 0.2, 0.3]))
    np.testing.assert_array_equal(cache.get("recipe", 0, 1, rows), [0.1, 0.2, 0.3])
    assert cache.get("recipe", 1, 1, rows) is None  # other seed
    assert cache.get("recipe", 0, 1, np.array([3, 5, 8])) is None  # other eval rows
    changed = quality.ScoreCache(tmp_path, dict(SETTINGS, epochs=2))
    assert changed.get("recipe", 0, 1, rows) is None
    assert not list(tmp_path.glob("*.tmp.npy"))


def test_each_side_keys_only_on_its_own_settings(tmp_path):
    rows = np.array([3, 5, 9])
    cache = quality.ScoreCache(tmp_path, SETTINGS)
    cache.put("peer", 0, 0, rows, np.ones(3))
    cache.put("ls0.1-fgm", 0, 0, rows, np.zeros(3))
    recipe_tuned = quality.ScoreCache(tmp_path, dict(SETTINGS, learning_rate=5e-5, list_size=8))
    assert recipe_tuned.get("peer", 0, 0, rows) is not None
    assert recipe_tuned.get("ls0.1-fgm", 0, 0, rows) is None
    peer_tuned = quality.ScoreCache(tmp_path, dict(SETTINGS, peer_learning_rate=2e-5))
    assert peer_tuned.get("peer", 0, 0, rows) is None
    assert peer_tuned.get("ls0.1-fgm", 0, 0, rows) is not None


def test_wrong_shape_names_the_file(tmp_path):
    cache = quality.ScoreCache(tmp_path, SETTINGS)
    rows = np.array([1, 2])
    np.save(cache.path("peer", 0, 0, rows), np.zeros(5))
    with pytest.raises(ValueError, match=r"peer-seed0-fold0.*shape \(5,\)"):
        cache.get("peer", 0, 0, rows)


def test_disabled_cache_stores_nothing(tmp_path):
    cache = quality.ScoreCache("", SETTINGS)
    cache.put("peer", 0, 0, np.array([1]), np.array([0.5]))
    assert cache.get("peer", 0, 0, np.array([1])) is None


def test_cross_validate_reads_the_cache_instead_of_training(tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "_train_rows", lambda rows, seed: rows)  # no --max_train_pairs
    class Data:
        num_folds = 2
        folds = np.array([0, 0, 1, 1, -1])
        gains = np.array([1.0, 0.0, 0.1, 1.0, 0.0])
        query_ids = np.array([7, 7, 8, 8, 9])

    cache = quality.ScoreCache(tmp_path, SETTINGS)
    calls = []

    def score_fold(train_rows, eval_rows):
        calls.append(list(eval_rows))
        return np.arange(len(eval_rows), 0, -1, dtype=float)

    first = quality.cross_validate(Data, 0, score_fold, "peer", log=lambda *a: None, cache=cache)
    second = quality.cross_validate(Data, 0, score_fold, "peer", log=lambda *a: None, cache=cache)
    assert calls == [[0, 1], [2, 3]] and first == second


def test_pipeline_stages_come_only_from_files_matching_the_cached_scores(tmp_path):
    import pandas as pd
    from bench.quality_train import components_path

    class Data:
        num_folds = 2
        folds = np.array([0, 0, 1, 1, -1])
        gains = np.array([1.0, 0.0, 0.1, 1.0, 0.0])
        query_ids = np.array([7, 7, 8, 8, 9])
        frame = pd.DataFrame({"example_id": [10, 11, 12, 13, 14]})

    cache = quality.ScoreCache(tmp_path, SETTINGS)
    run_dir = str(tmp_path / "pipeline-seed0")
    for fold, rows in ((0, np.array([0, 1])), (1, np.array([2, 3]))):
        final = np.array([0.2, 0.9])
        cache.put("pipeline", 0, fold, rows, final)
        np.savez(components_path(run_dir, rows), example_id=Data.frame["example_id"].to_numpy()[rows],
                 final=final, stage_folds=np.array([0.9, 0.2]), **({"stage_pseudo": final} if fold else {}))
    stages = quality.pipeline_stage_results(Data, tmp_path, [0], cache)
    # Fold 0 ranks the exact product (gain 1) first, fold 1 ranks it second; stage_pseudo is missing
    # in fold 0, so it is left out rather than reported on half the queries.
    assert list(stages) == ["pipeline stage_folds"]
    assert stages["pipeline stage_folds"][0][7] == pytest.approx(1.0)
    assert stages["pipeline stage_folds"][0][8] < 1.0
    cache.put("pipeline", 0, 1, np.array([2, 3]), np.array([0.5, 0.1]))  # another run's scores
    assert quality.pipeline_stage_results(Data, tmp_path, [0], cache) == {}


def test_comments_in_the_pipeline_flagfile_keep_its_cached_scores(tmp_path):
    keys = [quality.ScoreCache(tmp_path, SETTINGS, quality.flag_lines(text)).pipeline_hash
            for text in ("--steps=4\n--seed=1\n", "# MiniLM, 4 steps\n--steps=4  \n\n  --seed=1\n", "--steps=5\n--seed=1\n")]
    assert keys[0] == keys[1] != keys[2]
