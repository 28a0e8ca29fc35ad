"""SavedModel export of a run: `python -m trainers.export` writes <base>/1/ whose raw-field
signatures, in a fresh process that imports only tensorflow and tensorflow_text, score uncleaned
rows as trainers.predict does (the run has entity markers: they are ops of the graph too); rank orders products; warm-up requests replay; every op is one
the stock TF Serving 2.20 server links; the README's serving request runs as written."""

import json
import pathlib
import re
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from esci_tf.labels import GAINS
from esci_tf.serving.export import PRODUCT_FIELDS, RAW_FIELDS, TOKEN_INPUTS
from serving_fixtures import ROWS, tiny_run as _tiny_run, write_parquet as _write_parquet

pytestmark = pytest.mark.slow  # exports and reloads SavedModels

REPO = pathlib.Path(__file__).resolve().parents[1]
def _entity_template():
    """Entity markers with gazetteers that ROWS hit (brands, colors; sizes and model numbers too)."""
    from esci_tf.preprocessing.template import TemplateSettings

    return TemplateSettings(entity_markers=True, entity_brands=("sonix", "ソニックス"),
                            entity_colors=("black", "azul", "ホワイト"))


def _wire_rows() -> dict:
    """ROWS as a client sends them: one list per raw field, "" for an empty value."""
    return {name: [row[i] or "" for row in ROWS] for i, name in enumerate(RAW_FIELDS)}


def _run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The tiny run exported with `python -m trainers.export`, and trainers.predict's scores of
    the same rows written to parquet (the two commands run side by side)."""
    root = tmp_path_factory.mktemp("served")
    run_dir = _tiny_run(root / "run", _entity_template())
    examples, products = _write_parquet(root)
    commands = [
        [sys.executable, "-m", "trainers.export", f"--model_dir={run_dir}", f"--export_dir={root / 'export'}"],
        [sys.executable, "-m", "trainers.predict", f"--model_dir={run_dir}", f"--examples={examples}",
         f"--products={products}", "--task=all", f"--output={root / 'predictions.csv'}"],
    ]
    running = [subprocess.Popen(c, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for c in commands]
    for command, process in zip(commands, running):
        _, stderr = process.communicate()
        assert process.returncode == 0, f"{command[2]} failed:\n{stderr[-3000:]}"
    return types.SimpleNamespace(run_dir=run_dir, base=root / "export", export_dir=str(root / "export" / "1"),
                                 predictions=pd.read_csv(root / "predictions.csv"))


@pytest.fixture(scope="module")
def loaded(served):
    return tf.saved_model.load(served.export_dir)


def _readme_serving():
    """The Serving section of the README, its JSON request bodies and its Python block."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## Serving"):]
    end = section.find("\n## ", 1)
    section = section if end < 0 else section[:end]
    bodies = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S)]
    return section, bodies, re.findall(r"```python\n(.*?)```", section, re.S)


# Appended to the README's Python block: the same predict() on the uncleaned rows, saved as JSON.
FRESH_PROCESS_FOOTER = """
import sys

bodies = [json.load(open(name)) for name in ("request.json", "rank.json", "rows.json", "rank_rows.json", "same_query.json")]
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("esci_tf", "keras_hub", "keras_rs", "trainers"))
json.dump({"responses": [predict(body) for body in bodies], "modules": ours}, open("responses.json", "w"))
"""


def test_the_readme_request_in_a_fresh_tensorflow_process_scores_as_trainers_predict(served, tmp_path):
    section, bodies, python = _readme_serving()
    assert len(bodies) == 2 and len(python) == 1
    assert [b["signature_name"] for b in bodies] == ["serving_default", "rank"]
    for name in ("request.json", "rank.json"):
        assert f"curl -X POST http://localhost:8501/v1/models/esci:predict -d @{name}" in section
    for body in bodies:  # every raw field sent, as TF Serving requires
        assert set(body["instances"][0] if "instances" in body else body["inputs"]) == set(RAW_FIELDS)
    rows = _wire_rows()
    count = len(rows["query"])
    products = {k: v for k, v in rows.items() if k in PRODUCT_FIELDS}
    extra = {
        "rows.json": {"signature_name": "serving_default",
                      "instances": [dict(zip(rows, values)) for values in zip(*rows.values())]},
        "rank_rows.json": {"signature_name": "rank", "inputs": dict(products, query=rows["query"][1], product_locale="us")},
        "same_query.json": {"signature_name": "serving_default",
                            "inputs": dict(products, query=[rows["query"][1]] * count, product_locale=["us"] * count)},
    }
    for name, body in [("request.json", bodies[0]), ("rank.json", bodies[1]), *extra.items()]:
        (tmp_path / name).write_text(json.dumps(body))
    line = re.search(r'^EXPORT_DIR = "[^"]+"$', python[0], re.M)
    assert line, 'the README\'s Python block sets EXPORT_DIR = "..."'
    script = python[0].replace(line.group(0), f"EXPORT_DIR = {served.export_dir!r}") + FRESH_PROCESS_FOOTER
    (tmp_path / "readme.py").write_text(script)
    _run([sys.executable, str(tmp_path / "readme.py")], cwd=tmp_path)  # the block as written, in a fresh process
    out = json.loads((tmp_path / "responses.json").read_text())
    assert out["modules"] == []  # tensorflow and tensorflow_text alone
    pairs, ranked, served_rows, rank_rows, same_query = out["responses"]

    assert len(pairs["predictions"]) == len(bodies[0]["instances"])
    for prediction in pairs["predictions"]:
        assert np.isfinite(prediction["score"]) and len(prediction["probabilities"]) == 4
    scores = np.array(ranked["outputs"]["score"])
    assert len(scores) == len(bodies[1]["inputs"]["product_title"]) and np.isfinite(scores).all()
    assert ranked["outputs"]["order"] == np.argsort(-scores, kind="stable").tolist()

    # Uncleaned rows (HTML, emoji, ja/es, empty fields, 50,000 characters): trainers.predict's scores.
    score = np.array([p["score"] for p in served_rows["predictions"]])
    expected = served.predictions["score"].to_numpy()
    assert np.isfinite(score).all() and np.std(expected) > 1e-3
    np.testing.assert_allclose(score, expected, atol=1e-5)
    np.testing.assert_allclose([p["probabilities"] for p in served_rows["predictions"]],
                               served.predictions[["p_E", "p_S", "p_C", "p_I"]], atol=1e-5)
    # rank: one query against every product, as serving_default scores the same pairs.
    np.testing.assert_allclose(rank_rows["outputs"]["score"], same_query["outputs"]["score"], atol=1e-6)
    assert rank_rows["outputs"]["order"] == np.argsort(-np.array(rank_rows["outputs"]["score"]), kind="stable").tolist()


def test_saved_model_cli_shows_every_signature(served, tmp_path):
    cli = _run([str(pathlib.Path(sys.executable).parent / "saved_model_cli"), "show", "--all",
                "--dir", served.export_dir], cwd=tmp_path)
    for signature in ("serving_default", "rank", "score_tokens"):
        assert f"signature_def['{signature}']" in cli.stdout
    assert "inputs['product_bullet_point']" in cli.stdout


def test_signatures_match_the_keras_model_and_rank_orders_with_ties_in_input_order(served, loaded):
    from esci_tf.rankers.cross_encoder import CrossEncoderRanker

    from esci_tf.preprocessing.fields_preprocessor import FieldsPreprocessor
    from esci_tf.special_tokens import ENTITY_TOKENS, special_token_id

    ranker = CrossEncoderRanker.load(served.run_dir)
    rows = _wire_rows()
    fields_preprocessor = ranker.encoder.fields_preprocessor
    features = fields_preprocessor(rows)
    logits = ranker.model(features, training=False).numpy()
    out = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in rows.items()})
    np.testing.assert_allclose(out["logits"].numpy(), logits, atol=1e-5)
    # The served graph tags entities: the pairs carry marker tokens, and scored untagged they differ.
    base = fields_preprocessor.pair_preprocessor.base_vocabulary_size
    marker_ids = [special_token_id(token, base) for pair in ENTITY_TOKENS.values() for token in pair]
    assert np.isin(features["token_ids"].numpy(), marker_ids).sum() >= 10
    untagged = FieldsPreprocessor(fields_preprocessor.pair_preprocessor)(rows)
    assert np.abs(ranker.model(untagged, training=False).numpy() - logits).max() > 1e-3
    np.testing.assert_allclose(out["score"].numpy(), tf.nn.softmax(logits).numpy() @ GAINS, atol=1e-5)
    by_tokens = loaded.signatures["score_tokens"](**{k: tf.constant(features[k]) for k in TOKEN_INPUTS})
    np.testing.assert_allclose(by_tokens["score"].numpy(), out["score"].numpy(), atol=1e-6)

    # Products 0 and 2 are the same product: equal scores, kept in input order.
    products = {k: tf.constant([rows[k][0], rows[k][4], rows[k][0]]) for k in PRODUCT_FIELDS}
    ranked = loaded.signatures["rank"](query=tf.constant("headphones"), product_locale=tf.constant("us"), **products)
    scores, order = ranked["score"].numpy(), ranked["order"].numpy().tolist()
    assert scores[0] == scores[2] and order.index(0) + 1 == order.index(2)
    assert order == np.argsort(-scores, kind="stable").tolist()

    with pytest.raises(tf.errors.InvalidArgumentError, match="one value per row"):
        loaded.signatures["serving_default"](**{k: tf.constant(v[:2] if k == "product_color" else v)
                                                for k, v in rows.items()})


def test_a_query_empty_after_cleaning_is_scored_and_flagged_not_valid(served, loaded):
    """The serving policy (esci_tf.serving.export): a query with no text after cleaning (what
    tfrecords.build refuses to train on) is scored as trainers.predict scores it, with valid=False."""
    from esci_tf.preprocessing.cleaning import clean_texts

    queries = ["🎧🎧", "★★★", "", "   ", "headphones", "<b>x</b> 🎧", "ワイヤレス"]
    expected = [bool(text.strip()) for text in clean_texts(queries)]  # tfrecords.build's rule
    assert expected == [False, False, False, False, True, True, True]
    rows = {name: [value[1]] * len(queries) for name, value in _wire_rows().items()}
    out = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in dict(rows, query=queries).items()})
    assert out["valid"].numpy().tolist() == expected
    assert np.isfinite(out["score"].numpy()).all()
    wire = _wire_rows()  # ROWS 0 and 5 ("🎧🎧", "★★★"): scored as trainers.predict scored them
    out = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in wire.items()})
    assert out["valid"].numpy().tolist() == [False, True, True, True, True, False]
    np.testing.assert_allclose(out["score"].numpy(), served.predictions["score"].to_numpy(), atol=1e-5)
    products = {k: tf.constant(v) for k, v in wire.items() if k in PRODUCT_FIELDS}
    ranked = loaded.signatures["rank"](query=tf.constant("🎧🎧"), product_locale=tf.constant("us"), **products)
    assert not ranked["valid"].numpy().any() and ranked["valid"].shape == ranked["score"].shape


def test_warmup_requests_replay_against_their_signatures(served, loaded):
    from esci_tf.serving.warmup import read_warmup

    logs = read_warmup(served.export_dir)
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        "serving_default", "rank", "score_tokens"]
    for log in logs:
        request = log.predict_log.request
        signature = loaded.signatures[request.model_spec.signature_name]
        assert set(request.inputs) == set(signature.structured_input_signature[1])  # every input sent
        out = signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
        assert np.isfinite(out["score"].numpy()).all() and out["score"].shape[0] >= 3


def test_every_op_of_the_export_is_linked_by_the_stock_tf_serving_server(served):
    from esci_tf.serving.ops import saved_model_ops, unservable_ops

    ops = saved_model_ops(served.export_dir)
    # The list reads the function library, where the preprocessing's tf.text ops live.
    assert {"NormalizeUTF8", "RegexSplitWithOffsets", "SentencepieceTokenizeOp"} <= ops
    assert unservable_ops(served.export_dir) == []


def test_versions_are_numbered_and_never_overwritten(served):
    from trainers.export import export

    assert sorted(p.name for p in served.base.iterdir()) == ["1"]  # no temporary folder left
    with pytest.raises(FileExistsError, match="never overwritten"):
        export(served.run_dir, str(served.base), version=1)
    with pytest.raises(ValueError, match="ends in a version number"):
        export(served.run_dir, served.export_dir)
