"""--locales: a trainers.fit run on the us pairs only trains, evaluates and records us alone, a
resume with other locales is refused, trainers.predict refuses its model other locales' rows, and
as an ensemble member it scores only us rows, in EnsembleRanker, trainers.predict and the
exported SavedModel alike; its own export refuses other locales' rows (in the graph, and with one
line in trainers.predict --runner)."""

import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from absl import flags

from cli_fixtures import assert_one_line_error, run_module
from esci_tf.errors import DataError, FlagError
from esci_tf.data.reader import load_esci
from esci_tf.rankers import load_ranker
from esci_tf.rankers.base import predict as predict_frame, ranker_locales
from esci_tf.rankers.bm25 import BM25Ranker
from esci_tf.rankers.ensemble import EnsembleRanker
from esci_tf.training import run_settings
from esci_tf.training.config import RunConfig
from run_fixtures import TINY_CONFIG
from esci_tf.records.dataset import read_all
from trainers import fit, predict

pytestmark = pytest.mark.slow  # trains a tiny us-only run first


def _fit_args(output_dir, *extra):
    return ["fit", "--synthetic_queries=48", "--eval_fraction=0.3", "--backbone=xlm_roberta",
            f"--backbone_config={TINY_CONFIG}", "--max_length=24", "--batch_size=8", "--steps=2",
            "--learning_rate=1e-3", "--noprogress_bar", "--num_shards=1", "--strategy=cpu",
            f"--output_dir={output_dir}", *extra]


@pytest.fixture(scope="module")
def us_run(tmp_path_factory):
    """A tiny run trained with --locales=US (any case) and the generated us/es/jp files it read."""
    output_dir = tmp_path_factory.mktemp("us_run")
    metrics = fit.run_with_args(_fit_args(output_dir, "--locales=US"))
    data = output_dir / "data"
    return output_dir, metrics, str(data / "synthetic_examples.parquet"), str(data / "synthetic_products.parquet")


@pytest.fixture(scope="module")
def mixed_frame(us_run):
    frame, _ = load_esci(us_run[2], us_run[3], task="all")
    assert set(frame["product_locale"]) == {"us", "es", "jp"}
    return frame


def test_fit_trains_and_evaluates_only_the_given_locales_and_records_them(us_run):
    output_dir, metrics, _, _ = us_run
    for split in ("train", "test"):
        records = read_all(str(output_dir / "data" / f"{split}-*"))
        assert len(records["locale"]) and set(records["locale"].astype(str)) == {"us"}, split
    assert set(pd.read_csv(output_dir / "eval_predictions.csv")["product_locale"]) == {"us"}
    assert set(metrics["final"]["per_locale"]) == {"us"}
    assert json.loads((output_dir / "run_settings.json").read_text())["locales"] == ["us"]
    assert "--locales=US" in (output_dir / "flags.txt").read_text()  # the flags as given
    assert ranker_locales(str(output_dir)) == ("us",)
    assert load_ranker(str(output_dir)).locales == ("us",)


def test_resume_with_other_locales_is_refused(us_run):
    output_dir = us_run[0]
    with pytest.raises(flags.IllegalFlagValueError, match=r"--locales \["):
        fit.run_with_args(_fit_args(output_dir, "--locales=us,es"))
    with pytest.raises(flags.IllegalFlagValueError, match=re.escape('--locales ["us"] -> (not set)')):
        fit.run_with_args(_fit_args(output_dir))


def test_a_run_recorded_without_locales_resumes_as_every_locale():
    """Run directories from before --locales existed have no "locales" setting: all locales."""
    every = RunConfig.from_flat({"synthetic_queries": 8, "output_dir": "x"})
    recorded = run_settings.result_settings(every, {})
    assert "locales" not in recorded  # what an old run_settings.json holds
    assert run_settings.differences(recorded, run_settings.result_settings(every, {})) == []
    us = run_settings.result_settings(every.replace(locales=("us",)), {})
    assert run_settings.differences(recorded, us) == ["--locales (not recorded) -> [\"us\"]"]


def test_unknown_or_absent_locale_names_the_flag(us_run, tmp_path):
    with pytest.raises(flags.IllegalFlagValueError, match="--locales=fr: unknown locale 'fr'"):
        fit.run_with_args(_fit_args(tmp_path / "fr", "--locales=fr"))
    us_only = tmp_path / "us_examples.parquet"
    examples = pd.read_parquet(us_run[2])
    examples[examples["product_locale"] == "us"].to_parquet(us_only, index=False)
    with pytest.raises(FlagError, match=f"--locales=es: no pairs of locale es in {us_only}"):
        predict.run_with_args(["predict", f"--model_dir={us_run[0]}", f"--examples={us_only}",
                               f"--products={us_run[3]}", "--task=all", "--locales=es",
                               f"--output={tmp_path / 'p.csv'}"])


def test_predict_refuses_other_locales_and_scores_the_given_ones(us_run, mixed_frame, tmp_path):
    output_dir, _, examples, products = us_run
    result = run_module("trainers.predict", f"--model_dir={output_dir}", f"--examples={examples}",
                        f"--products={products}", "--task=all", f"--output={tmp_path / 'refused.csv'}")
    assert_one_line_error(result, "trainers.predict", f"the model in {output_dir} was trained for locale(s) us only",
                          "cannot score rows of locale", "--locales=us")
    assert not (tmp_path / "refused.csv").exists()
    table = predict.run_with_args(["predict", f"--model_dir={output_dir}", f"--examples={examples}",
                                   f"--products={products}", "--task=all", "--locales=us",
                                   f"--output={tmp_path / 'us.csv'}"])
    us_rows = mixed_frame[mixed_frame["product_locale"] == "us"]
    assert len(table) == len(us_rows) and set(table["product_locale"]) == {"us"}
    np.testing.assert_allclose(table["score"], predict_frame(load_ranker(str(output_dir)), us_rows).scores, atol=1e-6)


@pytest.fixture(scope="module")
def ensemble_dir(us_run, mixed_frame, tmp_path_factory):
    """E/: the us-only cross-encoder and an every-locale BM25, weighted by the "all" weights."""
    root = tmp_path_factory.mktemp("ensemble")
    shutil.copytree(us_run[0], root / "members" / "ce", ignore=shutil.ignore_patterns("checkpoints", "data", "logs"))
    BM25Ranker.fit_catalog(mixed_frame).save(str(root / "members" / "bm25"))
    EnsembleRanker.save(str(root), {"ce": "members/ce", "bm25": "members/bm25"},
                        {"all": {"ce": 1.0, "bm25": 0.5}}, {"ce": (0.3, 0.2), "bm25": (2.0, 1.5)})
    return root


def test_ensemble_member_scores_only_its_locale(ensemble_dir, mixed_frame):
    ensemble = load_ranker(str(ensemble_dir))
    assert ensemble.locales is None and ranker_locales(str(ensemble_dir)) is None
    assert ensemble.member_locales("ce") == ("us",) and ensemble.member_locales("bm25") is None
    prediction = predict_frame(ensemble, mixed_frame)  # the member would refuse es/jp rows if given them
    members = ensemble.member_predictions(mixed_frame)
    us = (mixed_frame["product_locale"] == "us").to_numpy()
    assert np.isnan(members["ce"].scores[~us]).all() and not np.isnan(members["ce"].scores[us]).any()
    bm25 = (members["bm25"].scores - 2.0) / 1.5
    np.testing.assert_allclose(prediction.scores[~us], 0.5 * bm25[~us])  # es, jp: BM25 alone
    np.testing.assert_allclose(prediction.scores[us], (members["ce"].scores[us] - 0.3) / 0.2 + 0.5 * bm25[us])
    # Class probabilities need a classifying member on every row: es/jp rows have only BM25.
    assert prediction.probabilities is None
    assert ensemble.weights_for("es") == {"bm25": 0.5} and ensemble.weights_for("us") == {"ce": 1.0, "bm25": 0.5}


def test_ensemble_weights_of_a_locale_name_only_members_covering_it(ensemble_dir, mixed_frame):
    members = load_ranker(str(ensemble_dir)).members
    with pytest.raises(ValueError, match="weights for locale 'es' name member ce, which was trained for locale"):
        EnsembleRanker(members, {"all": {"bm25": 1.0}, "es": {"ce": 1.0, "bm25": 1.0}}, {"ce": (0, 1), "bm25": (0, 1)})
    with pytest.raises(ValueError, match="no weighted member of the ensemble covers locale 'jp'"):
        EnsembleRanker(members, {"all": {"ce": 1.0}}, {"ce": (0, 1), "bm25": (0, 1)}, locales=("us", "jp"))
    two_locales = EnsembleRanker(members, {"all": {"ce": 1.0}, "es": {"bm25": 1.0}}, {"ce": (0, 1), "bm25": (0, 1)})
    assert two_locales.locales == ("es", "us")
    with pytest.raises(DataError, match="trained for locale\\(s\\) es,us only and cannot score rows of locale 'jp'"):
        two_locales.predict(mixed_frame)


def test_export_and_predict_equal_the_ensemble_on_mixed_locales(ensemble_dir, mixed_frame, us_run, tmp_path):
    from esci_tf.serving.ensemble_export import export_ensemble
    from esci_tf.serving.export import serving_inputs

    ensemble = load_ranker(str(ensemble_dir))
    expected = ensemble.predict(mixed_frame)
    table = predict.run_with_args(["predict", f"--model_dir={ensemble_dir}", f"--examples={us_run[2]}",
                                   f"--products={us_run[3]}", "--task=all", f"--output={tmp_path / 'e.csv'}"])
    np.testing.assert_allclose(table["score"], expected.scores, atol=1e-6)
    loaded = tf.saved_model.load(export_ensemble(ensemble, str(tmp_path / "export")))
    inputs = {k: tf.constant(v.astype(str)) for k, v in serving_inputs(mixed_frame).items()}
    out = loaded.signatures["serving_default"](**inputs)
    np.testing.assert_allclose(out["score"].numpy(), expected.scores, atol=1e-4)
    us = (mixed_frame["product_locale"] == "us").to_numpy()
    assert np.isnan(out["score_ce"].numpy()[~us]).all()  # the member never ran on es/jp rows
    np.testing.assert_allclose(out["score_ce"].numpy()[us], ensemble.member_predictions(mixed_frame)["ce"].scores[us],
                               atol=1e-5)
    # rank: an es query's products, none of them a row for the us-only member.
    rows = (mixed_frame["product_locale"] == "es").to_numpy()
    rows = rows & (mixed_frame["query"] == mixed_frame["query"][rows].iloc[0]).to_numpy()
    products = {k: tf.boolean_mask(v, rows) for k, v in inputs.items() if k not in ("query", "product_locale")}
    first = int(np.flatnonzero(rows)[0])
    ranked = loaded.signatures["rank"](query=inputs["query"][first], product_locale=inputs["product_locale"][first],
                                       **products)
    np.testing.assert_allclose(ranked["score"].numpy(), expected.scores[rows], atol=1e-4)


def test_the_classifier_member_gives_the_probabilities_in_python_and_in_the_export(ensemble_dir, mixed_frame,
                                                                                    tmp_path):
    """Weights that chose BM25 alone: the ensemble's class probabilities are its classifier
    member's (the cross-encoder), in EnsembleRanker and in the exported graph alike."""
    from esci_tf.serving.ensemble_export import export_ensemble
    from esci_tf.serving.export import serving_inputs

    members = load_ranker(str(ensemble_dir)).members
    ensemble = EnsembleRanker(members, {"all": {"bm25": 1.0}}, {"ce": (0.3, 0.2), "bm25": (2.0, 1.5)},
                              classifier="ce")
    us = mixed_frame[mixed_frame["product_locale"] == "us"].reset_index(drop=True)
    expected = ensemble.predict(us)
    np.testing.assert_allclose(expected.probabilities, members["ce"].probabilities(us), atol=1e-6)
    loaded = tf.saved_model.load(export_ensemble(ensemble, str(tmp_path / "export")))
    out = loaded.signatures["serving_default"](**{k: tf.constant(v.astype(str)) for k, v in serving_inputs(us).items()})
    np.testing.assert_allclose(out["score"].numpy(), expected.scores, atol=1e-4)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected.probabilities, atol=1e-4)


def test_exported_ensemble_of_some_locales_refuses_the_others(mixed_frame, tmp_path):
    from esci_tf.serving.ensemble_export import export_ensemble
    from esci_tf.serving.export import serving_inputs

    bm25 = BM25Ranker.fit_catalog(mixed_frame)
    bm25.locales = ("us",)
    bm25.save(str(tmp_path / "bm25"))
    assert json.loads((tmp_path / "bm25" / "ranker.json").read_text())["locales"] == ["us"]
    ensemble = EnsembleRanker({"bm25": load_ranker(str(tmp_path / "bm25"))}, {"all": {"bm25": 1.0}}, {"bm25": (0, 1)})
    assert ensemble.locales == ("us",)
    loaded = tf.saved_model.load(export_ensemble(ensemble, str(tmp_path / "export")))
    us = mixed_frame[mixed_frame["product_locale"] == "us"]
    served = loaded.signatures["serving_default"](**{k: tf.constant(v.astype(str))
                                                     for k, v in serving_inputs(us).items()})
    np.testing.assert_allclose(served["score"].numpy(), ensemble.predict(us).scores, atol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="trained for locale\\(s\\) us only"):
        loaded.signatures["serving_default"](**{k: tf.constant(v.astype(str))
                                                for k, v in serving_inputs(mixed_frame).items()})
    assert os.path.isdir(tmp_path / "export" / "1")


@pytest.fixture(scope="module")
def us_export(us_run, tmp_path_factory):
    """trainers.export of the us-only run: its version directory."""
    from trainers.export import export

    return export(str(us_run[0]), str(tmp_path_factory.mktemp("us_export") / "export"))


def test_exported_run_of_some_locales_refuses_the_others_and_records_them(us_export, us_run, mixed_frame):
    """A --locales=us run's SavedModel: us rows score as trainers.predict scores them; a request
    with an es or jp row fails naming the locales; the warm-up holds us rows only (TF Serving
    replays them at load: another locale's row would fail the load); the locales are recorded."""
    from esci_tf.serving.export import served_locales, serving_inputs
    from esci_tf.serving.warmup import read_warmup

    served = tf.saved_model.load(us_export).signatures["serving_default"]
    us = mixed_frame[mixed_frame["product_locale"] == "us"]
    scores = served(**{k: tf.constant(v.astype(str)) for k, v in serving_inputs(us).items()})["score"].numpy()
    np.testing.assert_allclose(scores, predict_frame(load_ranker(str(us_run[0])), us).scores, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="the model was trained for locale\\(s\\) us only"):
        served(**{k: tf.constant(v.astype(str)) for k, v in serving_inputs(mixed_frame).items()})
    assert served_locales(us_export) == ("us",)
    warm = [log.predict_log.request for log in read_warmup(us_export)]
    locales = {value.decode() for request in warm if "product_locale" in request.inputs
               for value in tf.make_ndarray(request.inputs["product_locale"]).ravel()}
    assert locales == {"us"}


def test_beam_scoring_refuses_the_other_locales_in_one_line_and_scores_the_given_ones(us_export, us_run, tmp_path):
    _, _, examples, products = us_run
    refused = tmp_path / "refused.csv"
    result = run_module("trainers.predict", f"--model_dir={us_export}", f"--examples={examples}",
                        f"--products={products}", "--task=all", f"--output={refused}", "--runner=DirectRunner")
    assert_one_line_error(result, "trainers.predict", f"the model in {us_export} was trained for locale(s) us only",
                          "cannot score rows of locale", "--locales=us")
    assert not refused.exists()
    local = predict.run_with_args(["predict", f"--model_dir={us_run[0]}", f"--examples={examples}",
                                   f"--products={products}", "--task=all", "--locales=us",
                                   f"--output={tmp_path / 'local.csv'}"])
    on_beam = predict.run_with_args(["predict", f"--model_dir={us_export}", f"--examples={examples}",
                                     f"--products={products}", "--task=all", "--locales=us", "--runner=DirectRunner",
                                     f"--output={tmp_path / 'beam.csv'}"])
    pd.testing.assert_frame_equal(on_beam[["query_id", "product_id", "product_locale"]],
                                  local[["query_id", "product_id", "product_locale"]])
    np.testing.assert_allclose(on_beam["score"], local["score"], atol=1e-5)
