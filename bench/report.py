"""Benchmark output: the summary table, the measured peaks, the machine's description and
results/<bench>.json."""

import datetime
import json
import os
import pathlib
import platform
import sys
from typing import Optional

import numpy as np

from bench.harness import summarize
from esci_tf import cpu


def _cell(value, fmt):
    if value is None:
        return "-"
    return fmt.format(value) if fmt else str(value)


TABLE_COLUMNS = (
    ("name", "config", None),
    ("side", "side", None),
    ("examples_per_s", "ex/s (median)", "{:.1f}"),
    ("examples_per_s_min", "min", "{:.1f}"),
    ("examples_per_s_max", "max", "{:.1f}"),
    ("ratio", "ours/peer", "{:.2f}"),
    ("ratio_vs", "vs peer", None),
    ("model_flops_per_s", "GFLOP/s", None),
    ("mfu", "MFU", "{:.1%}"),
)
LATENCY_COLUMNS = (
    ("latency_ms_median", "latency ms (median)", "{:.1f}"),
    ("latency_ms_p90", "p90", "{:.1f}"),
    ("latency_ratio", "latency ours/peer", "{:.2f}"),
)


def format_table(rows: list, columns=TABLE_COLUMNS, unit: str = "ex/s") -> str:
    """A fixed-width text table of summary rows (see summarize); `unit` names the rate."""
    columns = [(key, title.replace("ex/s", unit), fmt) for key, title, fmt in columns]
    if any(r.get("latency_ms_median") is not None for r in rows):
        columns += LATENCY_COLUMNS
    cells = [[title for _, title, _ in columns]]
    for row in rows:
        line = []
        for key, _, fmt in columns:
            value = row.get(key)
            if key == "model_flops_per_s":
                value = f"{value / 1e9:.1f}" if value else None
            line.append(_cell(value, fmt))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_peaks(peaks: dict) -> str:
    return "matmul peak (TensorFlow, measured this run): " + ", ".join(
        f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in peaks.items())


def machine_info() -> dict:
    """CPU, core count, load, library versions and thread settings of this run."""
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count()}
    flags = cpu.cpu_flags()
    info["cpu"] = cpu.cpu_model() or platform.processor()
    info["cpu_kind"] = cpu.cpu_kind(flags)
    info["cpu_features"] = sorted(f for f in flags if f.startswith(cpu.BENCH_FEATURES))
    if hasattr(os, "getloadavg"):
        info["load_average"] = list(os.getloadavg())
    try:
        import resource

        info["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    except ImportError:
        pass
    for module in ("tensorflow", "keras", "keras_hub", "torch", "transformers", "tokenizers"):
        if module in sys.modules:
            info[module] = getattr(sys.modules[module], "__version__", "?")
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    return info


def write_results(results_dir, name: str, payload: dict) -> pathlib.Path:
    """Write results_dir/<name>.json (payload plus a UTC timestamp); returns the path."""
    results_dir = pathlib.Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    payload = dict(payload, written_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=_json_default)
        f.write("\n")
    return path


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pathlib.Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def report(bench: str, settings: dict, sections: list, peaks: Optional[dict], results_dir,
           extra: Optional[dict] = None, log=print, unit: str = "ex/s") -> pathlib.Path:
    """Print one table per section (title, contenders, samples) and the peaks, and write
    results_dir/<bench>.json with every section's summary rows; returns the JSON path."""
    results = {}
    machine = cpu.describe()
    for title, contenders, samples in sections:
        rows = summarize(contenders, samples, peaks)
        results[title] = rows
        log(f"\n{title} ({machine})")
        log(format_table(rows, unit=unit))
    if peaks:
        log(format_peaks(peaks))
    payload = {"bench": bench, "settings": settings, "machine": machine_info(), "peaks_flops_per_s": peaks,
               "results": results, **(extra or {})}
    path = write_results(results_dir, bench, payload)
    log(f"results: {path}")
    return path
