"""The build summary: counts per split and locale, truncation, dropped rows, settings, files."""

import os

import numpy as np

from esci_tf import files
from esci_tf.labels import NUM_CLASSES, SHORT_LABELS

SUMMARY_FILE = "summary.json"


def label_counts(labels) -> dict:
    """{"E": n, "S": n, "C": n, "I": n} of integer labels."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=NUM_CLASSES)
    return {name: int(n) for name, n in zip(SHORT_LABELS, counts)}


def _counts(frame) -> dict:
    return {
        "pairs": int(len(frame)),
        "queries": int(frame["query_id"].nunique()),
        "labels": label_counts(frame["label"]),
    }


def _truncation(tokens_cut) -> dict:
    tokens_cut = np.asarray(tokens_cut)
    truncated = int(np.sum(tokens_cut > 0))
    return {
        "truncated_pairs": truncated,
        "truncation_rate": truncated / len(tokens_cut) if len(tokens_cut) else 0.0,
        "mean_tokens_cut_when_truncated": float(tokens_cut[tokens_cut > 0].mean()) if truncated else 0.0,
    }


def split_summary(frame, tokens_cut, shard_counts: dict) -> dict:
    """Counts of one split; tokens_cut[i] is how many tokens truncation removed from pair i."""
    tokens_cut = np.asarray(tokens_cut)
    locales = {}
    for locale, rows in frame.groupby("product_locale", sort=True).indices.items():
        locales[locale] = {**_counts(frame.iloc[rows]), **_truncation(tokens_cut[rows])}
    return {
        **_counts(frame),
        **_truncation(tokens_cut),
        "longest_list": int(frame.groupby("query_id").size().max()) if len(frame) else 0,
        "locales": locales,
        "files": [{"path": path, "records": count} for path, count in shard_counts.items()],
    }


def overall_summary(frames: dict) -> dict:
    """Counts over all splits together (distinct queries counted once) and queries in several splits."""
    ids_per_split = [set(frame["query_id"]) for frame in frames.values()]
    seen, shared = set(), set()
    for ids in ids_per_split:
        shared |= seen & ids
        seen |= ids
    pairs = sum(len(frame) for frame in frames.values())
    labels = {name: sum(label_counts(f["label"])[name] for f in frames.values()) for name in SHORT_LABELS}
    return {"pairs": int(pairs), "queries": len(seen), "labels": labels, "queries_in_several_splits": len(shared)}


def write_summary(summary: dict, output_dir: str) -> str:
    path = os.path.join(output_dir, SUMMARY_FILE)
    files.write_json(path, summary)
    return path


def read_summary(output_dir: str) -> dict:
    return files.read_json(os.path.join(output_dir, SUMMARY_FILE))


def format_table(summary: dict) -> str:
    """A plain-text table of pairs, queries, labels and truncation per split and locale."""
    header = ("split", "locale", "pairs", "queries", *SHORT_LABELS, "truncated")
    rows = []
    for split, stats in summary["splits"].items():
        for locale, counts in stats["locales"].items():
            rows.append((split, locale, counts["pairs"], counts["queries"], *counts["labels"].values(),
                         f"{counts['truncation_rate']:.1%}"))
        rows.append((split, "all", stats["pairs"], stats["queries"], *stats["labels"].values(),
                     f"{stats['truncation_rate']:.1%}"))
    total = summary["total"]
    rows.append(("total", "all", total["pairs"], total["queries"], *total["labels"].values(), ""))
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(v).rjust(w) for v, w in zip(r, widths)) for r in [header] + rows]
    settings = summary["settings"]
    lines.append(
        f"tokenizer {settings['tokenizer']} (backbone {settings['backbone']}), max_length "
        f"{settings['max_length']}, vocabulary_size {settings['vocabulary_size']}"
    )
    dropped = summary["dropped"]
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(dropped["counts"].items())) or "none"
    lines.append(f"dropped rows: {dropped['total']} ({reasons})")
    for split, stats in summary["splits"].items():
        if len(stats["files"]) < settings.get("num_shards", 0):
            lines.append(f"note: split {split} has {stats['queries']} queries, so {len(stats['files'])} shards "
                         f"instead of --num_shards={settings['num_shards']} (a query's rows stay in one shard)")
    if total["queries_in_several_splits"]:
        lines.append(f"warning: {total['queries_in_several_splits']} query_ids appear in more than one split")
    return "\n".join(lines)
