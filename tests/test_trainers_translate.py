"""python -m trainers.translate on the generated demo data with the table backend: the official
schema out, every training pair in the other locales with its original query id, a rerun served
by the cache, --dry_run, texts without a translation, and bad flags in one line."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from cli_fixtures import assert_one_line_error, run_module
from esci_tf import cli
from esci_tf.data.augmentation import ORIGINAL_EXAMPLE_ID, ORIGINAL_QUERY_ID, load_augmentation
from esci_tf.errors import DataError, FlagError
from esci_tf.data.synthetic import write_esci_files
from esci_tf.data.translation.base import Translator
from esci_tf.data.translation.demo import DemoTranslator, demo_table_rows
from esci_tf.data.translation.table import TableTranslator, write_table
from trainers.translate import translate_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANGUAGES = {"us": "en", "es": "es", "jp": "ja"}


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("translate")
    examples, products = write_esci_files(10, 5, str(root / "data"))
    table = str(root / "table.parquet")
    made = run_module("trainers.demo_translation", f"--examples={examples}", f"--products={products}",
                      f"--output={table}")  # the developer command that writes the demo's table
    assert made.returncode == 0, made.stderr[-2000:]
    expected = str(root / "expected.parquet")
    write_table(demo_table_rows(examples, products), expected)
    assert pd.read_parquet(table).equals(pd.read_parquet(expected))
    return examples, products, table


def test_table_backend_cli_on_the_demo_data(demo_files, tmp_path):
    examples, products, table = demo_files
    out = tmp_path / "translated"
    completed = subprocess.run([sys.executable, "-m", "trainers.translate", f"--examples={examples}",
                                f"--products={products}", "--targets=es,jp,us", "--backend=table",
                                f"--table={table}", f"--output_dir={out}"], cwd=REPO, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "(no charge)" in completed.stdout and "0 failed" in completed.stdout
    summary = json.loads((out / "summary.json").read_text())
    source = pd.read_parquet(examples)
    source_products = pd.read_parquet(products).set_index(["product_id", "product_locale"])
    train = source[source["split"] == "train"]
    translated, _ = load_augmentation(str(out / "examples.parquet"), str(out / "products.parquet"), task="all")
    assert summary["translated_pairs"] == len(translated) == 2 * len(train)
    assert summary["failed_texts"] == 0 and summary["cached_texts"] == 0

    # Ids past the source file's; each translation keeps its original query and pair.
    assert translated["example_id"].min() > source["example_id"].max()
    assert translated["query_id"].min() > source["query_id"].max()
    original = train.set_index("example_id").loc[translated[ORIGINAL_EXAMPLE_ID]]
    assert (original["query_id"].to_numpy() == translated[ORIGINAL_QUERY_ID].to_numpy()).all()
    assert (original["esci_label"].to_numpy() == translated["esci_label"].to_numpy()).all()
    assert (original["product_locale"].to_numpy() != translated["product_locale"].to_numpy()).all()
    assert (translated["product_id"] == [f"{p}~{s}-{t}" for p, s, t in zip(
        original.product_id, original.product_locale, translated.product_locale)]).all()
    assert translated.groupby("query_id")[ORIGINAL_QUERY_ID].nunique().max() == 1

    # The text is the backend's translation; brand and color are left as they are.
    demo = DemoTranslator()
    for row, source_row in zip(translated.head(30).itertuples(), original.head(30).itertuples()):
        languages = LANGUAGES[source_row.product_locale], LANGUAGES[row.product_locale]
        assert row.query == demo.translate([source_row.query], *languages)[0]
        product = source_products.loc[(source_row.product_id, source_row.product_locale)]
        assert row.product_title == demo.translate([product["product_title"]], *languages)[0]
        assert row.product_brand == (product["product_brand"] or "")
        assert row.product_color == (product["product_color"] or "")

    # A rerun is served by the cache and writes the same files.
    before = pd.read_parquet(out / "examples.parquet")
    again = translate_files(examples, products, str(out), TableTranslator(table), show_progress=False,
                            echo=lambda line: None)
    assert again["translated_texts"] == 0 and again["cached_texts"] == summary["distinct_texts"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "examples.parquet"), before)


class Paid(Translator):
    name, paid = "paid", True

    def translate(self, texts, source, target):
        raise AssertionError("--dry_run must not call the backend")


def test_dry_run_prints_the_cost_and_sends_nothing(demo_files, tmp_path):
    examples, products, _ = demo_files
    lines = []
    summary = translate_files(examples, products, str(tmp_path), Paid(), price_per_million=20.0,
                              dry_run=True, echo=lines.append)
    cost = summary["characters_to_send"] * 20.0 / 1e6
    assert summary["dry_run"] and summary["characters_to_send"] == summary["distinct_characters"] > 0
    assert f"{summary['characters_to_send']:,} characters to send to paid: estimated cost ${cost:,.2f}" in lines[0]
    assert not (tmp_path / "examples.parquet").exists() and not (tmp_path / "summary.json").exists()


def test_texts_without_translation_stop_the_run_or_are_left_out(demo_files, tmp_path):
    examples, products, table = demo_files
    rows = pd.read_parquet(table)
    missing = rows.iloc[0]
    partial = str(tmp_path / "partial.parquet")
    rows.iloc[1:].to_parquet(partial)
    with pytest.raises(DataError, match=r"1 texts could not be translated .*has no translation.*--on_failed=skip"):
        translate_files(examples, products, str(tmp_path / "a"), TableTranslator(partial), show_progress=False,
                        echo=lambda line: None)
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["written"] is False
    assert not (tmp_path / "a" / "examples.parquet").exists()

    summary = translate_files(examples, products, str(tmp_path / "b"), TableTranslator(partial), on_failed="skip",
                              show_progress=False, echo=lambda line: None)
    direction = f"{missing.source_language}->{missing.target_language}".replace("en", "us").replace("ja", "jp")
    assert summary["failed_texts"] == 1 and summary["per_direction"][direction]["pairs_left_out"] >= 1
    written = pd.read_parquet(tmp_path / "b" / "examples.parquet")
    assert len(written) == summary["translated_pairs"] < 2 * int((pd.read_parquet(examples)["split"] == "train").sum())


def test_fields_flag_translates_color_only_when_asked(demo_files, tmp_path):
    examples, products, _ = demo_files
    rows = list(demo_table_rows(examples, products, fields=["title", "color"]))
    table = str(tmp_path / "table.parquet")
    write_table(rows, table)
    translate_files(examples, products, str(tmp_path), TableTranslator(table), fields=["title", "color"],
                    targets=["es"], show_progress=False, echo=lambda line: None)
    out = pd.read_parquet(tmp_path / "products.parquet")
    assert set(out["product_locale"]) == {"es"}
    from_us = out[out["source_product_locale"] == "us"]
    assert set(from_us["product_color"].dropna()) <= {"negro", "blanco", "rojo", "azul", "verde", "plateado", "rosa",
                                                      "gris"}
    original = pd.read_parquet(products).set_index("product_id")
    kept = original.loc[from_us["source_product_id"], "product_description"].fillna("").to_numpy()
    assert (from_us["product_description"].fillna("").to_numpy() == kept).all()  # not in --fields: as it was
    with pytest.raises(FlagError, match="--targets=es,fr"):
        translate_files(examples, products, str(tmp_path), TableTranslator(table), targets=["es", "fr"])
    with pytest.raises(FlagError, match="--fields=size"):
        translate_files(examples, products, str(tmp_path), TableTranslator(table), fields=["size"])


def test_a_missing_backend_setting_is_one_line():
    common = ("--examples=x.parquet", "--products=y.parquet", "--output_dir=/tmp/unused")
    assert_one_line_error(run_module("trainers.translate", *common, "--backend=table"), "trainers.translate",
                          "--backend=table needs --table", code=cli.FLAG_EXIT)
    assert_one_line_error(run_module("trainers.translate", *common, "--backend=google"), "trainers.translate",
                          "--backend=google needs --project", code=cli.FLAG_EXIT)


def test_a_google_dry_run_needs_no_credentials(demo_files, tmp_path):
    """The dry run prints the characters and the cost, says what the real run would lack, sends
    nothing (the endpoint is a closed port) and exits 0; the real run stops on the credentials in
    one line before reading the files."""
    examples, products, _ = demo_files
    no_credentials = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json"), "NO_GCE_CHECK": "True",
                      "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")}
    args = (f"--examples={examples}", f"--products={products}", "--backend=google", "--project=P",
            "--api_endpoint=http://127.0.0.1:9", f"--output_dir={tmp_path / 'out'}")
    dry = run_module("trainers.translate", *args, "--dry_run", env=no_credentials)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "characters to send to google: estimated cost $" in dry.stdout
    assert "the real run would stop here: --backend=google: no usable Google Cloud credentials" in dry.stdout
    assert dry.stdout.rstrip().endswith("translate: --dry_run, nothing sent")
    real = run_module("trainers.translate", *args, env=no_credentials)
    assert_one_line_error(real, "trainers.translate", "no usable Google Cloud credentials", code=cli.FLAG_EXIT)
    assert "estimated cost" not in real.stdout


def test_the_former_name_tfrecords_translate_runs_the_same_command():
    alias = run_module("tfrecords.translate", "--examples=missing.parquet", "--products=missing.parquet",
                       "--output_dir=out", "--target_locales=es", "--backend=table")
    direct = run_module("trainers.translate", "--examples=missing.parquet", "--products=missing.parquet",
                        "--output_dir=out", "--target_locales=es", "--backend=table")
    assert alias.returncode == direct.returncode != 0
    assert alias.stderr.strip().splitlines()[-1] == direct.stderr.strip().splitlines()[-1]
