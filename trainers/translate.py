"""Translate ESCI training pairs into the other locales (the paper's augmentation):
python -m trainers.translate --examples X --products Y --targets es,jp,us --backend google|table
--output_dir D [--dry_run].

Reads and validates the files (esci_tf.data.reader), collects the queries and product fields to
translate (title, bullets, description; brand and color only with --fields), de-duplicates them
and asks the translation cache (--cache, default D/translation_cache.sqlite; a local file
under ~/.cache/esci-tf for a gs:// D) first. Before any
paid call it prints the characters to send and the estimated cost; --dry_run stops there (it
needs no credentials, and says what a real run would lack: credentials, the client package). Then
it translates the rest in batches within the backend's limits (a progress bar with ETA), each
answered batch committed to the cache, so a killed run loses nothing it was answered and a
rerun pays for nothing twice. It writes D/examples.parquet and D/products.parquet in the
official schema (product_locale the target, new product ids that record the source, each pair's
original_query_id for the folds) and D/summary.json (translated, cached, failed). Texts a
backend cannot translate stop the run naming them (--on_failed=skip: their pairs are left out
and counted). Backends: google (Cloud Translation v3; --project, --location, --transport,
--api_endpoint; the `translate` extra), table (--table: a parquet of source_language,
target_language, source_text, translated_text made by any MT system), argos (offline, if the
user installed argostranslate and its models). `python -m trainers.demo_translation` writes
the table for the generated demo data.
"""

import os

from absl import app, flags

from esci_tf import cli
from esci_tf.errors import DataError, FlagError

FLAGS = flags.FLAGS
BACKENDS = ("google", "table", "argos")
EXAMPLES_FILE = "examples.parquet"
PRODUCTS_FILE = "products.parquet"
SUMMARY_FILE = "summary.json"
CACHE_FILE = "translation_cache.sqlite"
# The cache of a remote --output_dir (sqlite needs a local file system).
LOCAL_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "esci-tf", CACHE_FILE)
PRICE_PER_MILLION = 20.0  # US$ per million characters, Cloud Translation NMT (basic and advanced)


def make_translator(backend: str, table: str | None = None, project: str | None = None, location: str = "global",
                    transport: str = "rest", api_endpoint: str | None = None, anonymous_credentials: bool = False,
                    batch_chars: int = 5_000, chars_per_minute: int = 6_000_000, max_retries: int = 8,
                    dry_run: bool = False):
    """The Translator a --backend names (its settings checked before any file is read; for a real
    run its credentials too, a dry run needs none)."""
    if backend == "table":
        if not table:
            raise FlagError("--backend=table needs --table (a parquet of source_language, target_language, "
                            "source_text, translated_text)")
        from esci_tf.data.translation.table import TableTranslator

        return TableTranslator(table)
    if backend == "argos":
        from esci_tf.data.translation.argos import ArgosTranslator

        return ArgosTranslator()
    if backend == "google":
        from esci_tf.data.translation.google_v3 import GoogleTranslator

        credentials = None
        if anonymous_credentials:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        return GoogleTranslator(project, location, transport, api_endpoint, credentials, batch_chars=batch_chars,
                                chars_per_minute=chars_per_minute, max_retries=max_retries, connect=not dry_run)
    raise FlagError(f"--backend={backend!r}: expected one of {', '.join(BACKENDS)}")


def _parse_locales(targets) -> list:
    from esci_tf.special_tokens import LOCALES

    targets = [t.strip() for t in targets if t.strip()]
    bad = [t for t in targets if t not in LOCALES]
    if bad or not targets or len(set(targets)) != len(targets):
        raise FlagError(f"--targets={','.join(targets)}: distinct locales of {', '.join(LOCALES)}")
    return targets


def _parse_fields(fields) -> list:
    from esci_tf.data.translation.pairs import PRODUCT_FIELDS

    bad = [f for f in fields if f not in PRODUCT_FIELDS]
    if bad or len(set(fields)) != len(fields):
        raise FlagError(f"--fields={','.join(fields)}: distinct product fields of {', '.join(PRODUCT_FIELDS)}")
    return list(fields)


def estimate_line(plan, translator, price_per_million: float) -> str:
    """What the run will send, and what it costs a paid backend."""
    summary = plan.summary()
    chars, texts = plan.to_send_chars, plan.to_send_texts
    line = (f"translate: {summary['distinct_texts']} distinct texts, {summary['cached_texts']} in the cache; "
            f"{texts} texts, {chars:,} characters to send to {translator.name}")
    if translator.paid:
        line += f": estimated cost ${chars * price_per_million / 1e6:,.2f} at ${price_per_million:g} per million characters"
    else:
        line += " (no charge)"
    return line


def translate_files(examples: str, products: str, output_dir: str, translator, targets=("es", "jp", "us"),
                    fields=None, split: str = "train", task: str = "all", cache: str | None = None,
                    dry_run: bool = False, on_failed: str = "raise", on_bad_rows: str = "raise",
                    price_per_million: float = PRICE_PER_MILLION, show_progress: bool = True,
                    echo=print) -> dict:
    """The translation the module docstring describes; returns summary.json's content."""
    from esci_tf import files
    from esci_tf.data.reader import load_esci, read_table
    from esci_tf.data.translation.cache import TranslationCache
    from esci_tf.data.translation.engine import TranslationPlan
    from esci_tf.data.translation.pairs import DEFAULT_FIELDS, translated_frames, translation_requests

    targets = _parse_locales(targets)
    fields = _parse_fields(DEFAULT_FIELDS if fields is None else fields)
    if on_failed not in ("raise", "skip"):
        raise FlagError(f"--on_failed={on_failed!r}: expected raise or skip")
    cli.check_writable(output_dir, "output_dir", directory=True)
    cache_path = cache or (LOCAL_CACHE if "://" in str(output_dir) else os.path.join(output_dir, CACHE_FILE))
    cli.check_writable(cache_path, "cache")
    all_examples = read_table(examples)
    frame, report = load_esci(examples, products, task=task, split=None if split == "all" else split,
                              on_bad_rows=on_bad_rows)
    store = TranslationCache(cache_path, translator.identity())
    try:
        plan = TranslationPlan.build(translation_requests(frame, targets, fields), store)
        echo(estimate_line(plan, translator, price_per_million))
        if dry_run:
            problem = translator.setup_problem() if plan.to_send_texts else None
            if problem:
                echo(f"translate: the real run would stop here: {problem}")
            return {"dry_run": True, **plan.summary(), "characters_to_send": plan.to_send_chars,
                    "setup_problem": problem}
        plan.run(translator, show_progress=show_progress)
    finally:
        store.close()
    summary = plan.summary()
    summary.update(backend=translator.identity(), targets=targets, fields=fields, split=split, task=task,
                   examples=os.fspath(examples), products=os.fspath(products), cache=cache_path,
                   source_pairs=len(frame), dropped_rows=report.to_dict())
    retries = getattr(translator, "retries", None)
    if retries is not None:
        summary["retried_requests"] = retries
    if summary["failed_texts"] and on_failed == "raise":
        files.write_json(os.path.join(output_dir, SUMMARY_FILE), {**summary, "written": False})
        first = summary["failures"][0]
        raise DataError(f"{summary['failed_texts']} texts could not be translated (listed in "
                        f"{os.path.join(output_dir, SUMMARY_FILE)}), e.g. {first['source']}->{first['target']} "
                        f"{first['text'][:60]!r}: {first['reason']}; the answered ones are cached, rerun to retry "
                        "the rest, or --on_failed=skip to leave their pairs out")
    example_start = int(all_examples["example_id"].astype("int64").max()) + 1 if len(all_examples) else 0
    query_start = int(all_examples["query_id"].astype("int64").max()) + 1 if len(all_examples) else 0
    out_examples, out_products, counts = translated_frames(frame, plan, targets, fields, example_start, query_start)
    summary.update(written=True, translated_pairs=len(out_examples), translated_products=len(out_products),
                   per_direction=counts)
    files.write_parquet(os.path.join(output_dir, PRODUCTS_FILE), out_products)
    files.write_parquet(os.path.join(output_dir, EXAMPLES_FILE), out_examples)
    files.write_json(os.path.join(output_dir, SUMMARY_FILE), summary)  # last: it vouches for the two files
    return summary


def define_flags():
    """The command-line flags (defined only when run as a program)."""
    flags.DEFINE_string("examples", None, "Examples file (parquet or csv; local or gs://).", required=True)
    flags.DEFINE_string("products", None, "Products file matching --examples.", required=True)
    flags.DEFINE_string("output_dir", None, "Where examples.parquet, products.parquet and summary.json go.",
                        required=True)
    flags.DEFINE_list("targets", ["es", "jp", "us"], "Locales to translate into (each pair into every one but its own).")
    flags.DEFINE_enum("backend", None, list(BACKENDS), "google: Cloud Translation v3; table: --table; argos: "
                      "offline Argos Translate (if installed).", required=True)
    flags.DEFINE_list("fields", ["title", "bullet_point", "description"],
                      "Product fields to translate (queries always are); brand and color stay as they are "
                      "unless listed.")
    flags.DEFINE_enum("split", "train", ["train", "test", "all"], "Rows of the examples file to translate.")
    flags.DEFINE_enum("task", "all", ["1", "2", "3", "all"], "KDD Cup task whose rows to translate.")
    flags.DEFINE_string("cache", None, "Translation cache (local sqlite file; default <output_dir>/"
                        f"{CACHE_FILE}, or {LOCAL_CACHE} for a gs:// --output_dir); share one across runs "
                        "to pay once.")
    flags.DEFINE_bool("dry_run", False, "Print the characters to send and the estimated cost, then stop.")
    flags.DEFINE_enum("on_failed", "raise", ["raise", "skip"], "Texts with no translation: stop (after caching "
                      "the rest), or leave their pairs out and count them.")
    flags.DEFINE_enum("on_bad_rows", "raise", ["raise", "skip"], "Bad input rows: stop, or drop and report them.")
    flags.DEFINE_float("price_per_million_chars", PRICE_PER_MILLION, "US$ per million characters, for the estimate.")
    flags.DEFINE_string("table", None, "--backend=table: the translation table (parquet or csv).")
    flags.DEFINE_string("project", None, "--backend=google: the Google Cloud project (billed).")
    flags.DEFINE_string("location", "global", "--backend=google: the API location (global, us-central1, ...).")
    flags.DEFINE_enum("transport", "rest", ["rest", "grpc"], "--backend=google: the client transport.")
    flags.DEFINE_string("api_endpoint", None, "--backend=google: another endpoint (an emulator, a test server; "
                        "http://host:port for plain HTTP with --transport=rest).")
    flags.DEFINE_bool("anonymous_credentials", False, "--backend=google: send no credentials (emulators only).")
    flags.DEFINE_integer("batch_chars", 5_000, "--backend=google: code points per request (at most 30,000).")
    flags.DEFINE_integer("chars_per_minute", 6_000_000, "--backend=google: the project's characters per minute "
                         "(0: no limit).")
    flags.DEFINE_integer("max_retries", 8, "--backend=google: retries of a request answered 429, 403 rate "
                         "limit or 5xx (exponential backoff).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    translator = make_translator(FLAGS.backend, FLAGS.table, FLAGS.project, FLAGS.location, FLAGS.transport,
                                 FLAGS.api_endpoint, FLAGS.anonymous_credentials, FLAGS.batch_chars,
                                 FLAGS.chars_per_minute, FLAGS.max_retries, FLAGS.dry_run)
    summary = translate_files(FLAGS.examples, FLAGS.products, FLAGS.output_dir, translator, FLAGS.targets,
                              FLAGS.fields, FLAGS.split, FLAGS.task, FLAGS.cache, FLAGS.dry_run, FLAGS.on_failed,
                              FLAGS.on_bad_rows, FLAGS.price_per_million_chars)
    if summary.get("dry_run"):
        print("translate: --dry_run, nothing sent")
        return
    print(f"translate: {summary['translated_texts']} texts translated now, {summary['cached_texts']} from the cache, "
          f"{summary['failed_texts']} failed; {summary['translated_pairs']} pairs and {summary['translated_products']} "
          f"products in {FLAGS.output_dir}; summary: {os.path.join(FLAGS.output_dir, SUMMARY_FILE)}")


if __name__ == "__main__":
    define_flags()
    cli.run(main, "trainers.translate")
