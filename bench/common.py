"""Shared benchmark code: alternating timed rounds, medians and ratios, tables and JSON,
encoder FLOP counting, matmul peak measurement, and the real ESCI sample's pairs.

Every benchmark runs "contenders" (ours and the peer, transformers + PyTorch) in the same
process, alternating within each round (ours, peer, ours, peer, ...) so that machine drift
affects both; results are medians over rounds and ratios ours / peer.
"""

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from typing import Callable, Optional

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data" / "esci_sample"
DEFAULT_RESULTS_DIR = REPO / "results"
SIDES = ("ours", "peer")


# ---------------------------------------------------------------------------------------------
# FLOP counting
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class EncoderShape:
    """The sizes that set a transformer encoder's matmul FLOPs."""

    num_layers: int
    hidden_dim: int
    intermediate_dim: int
    num_classes: int = 4

    @classmethod
    def from_hf_config(cls, config: dict, num_classes: int = 4) -> "EncoderShape":
        """From a Hugging Face config.json dict (bert / xlm-roberta keys)."""
        missing = [k for k in ("num_hidden_layers", "hidden_size", "intermediate_size") if k not in config]
        if missing:
            raise ValueError(f"Hugging Face config lacks {missing}")
        return cls(config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"], num_classes)

    @property
    def matmul_params_per_layer(self) -> int:
        """Weights of the per-token matmuls of one layer: Q, K, V, output, two feed-forward."""
        h, i = self.hidden_dim, self.intermediate_dim
        return 4 * h * h + 2 * h * i


def forward_flops(shape: EncoderShape, lengths) -> float:
    """Matmul FLOPs of one forward pass over sequences of the given token lengths.

    Per token and layer 2 * (4 h^2 + 2 h i) (projections and feed-forward); per sequence of
    length l and layer 4 l^2 h (Q K^T and attention x V); per sequence the pooler and the
    classifier 2 (h^2 + 4 h). Embedding lookups, norms and softmax are not matmuls and are
    left out.
    """
    lengths = np.asarray(lengths, dtype=np.float64).reshape(-1)
    if (lengths < 0).any():
        raise ValueError("sequence lengths must be >= 0")
    h = shape.hidden_dim
    dense = 2.0 * shape.num_layers * shape.matmul_params_per_layer * lengths.sum()
    attention = 4.0 * shape.num_layers * h * np.square(lengths).sum()
    head = 2.0 * (h * h + h * shape.num_classes) * len(lengths)
    return float(dense + attention + head)


def train_flops(shape: EncoderShape, lengths) -> float:
    """Forward + backward: 3x the forward matmul FLOPs."""
    return 3.0 * forward_flops(shape, lengths)


# ---------------------------------------------------------------------------------------------
# Matmul peak
# ---------------------------------------------------------------------------------------------

def measure_matmul_peak(dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of a [size, size] x [size, size] TensorFlow matmul in `dtype`."""
    import tensorflow as tf

    if size < 1 or repeats < 1:
        raise ValueError(f"peak size and repeats must be >= 1, got {size}, {repeats}")
    a = tf.cast(tf.random.stateless_normal((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((size, size), seed=(3, 4)), dtype)
    # The sum forces the product to be computed; its cost (size^2) is negligible.
    product_sum = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32)))
    product_sum(a, b).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product_sum(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def measure_peaks(size: int, repeats: int = 5) -> dict:
    """{"fp32": FLOP/s, "bf16": FLOP/s} of big TensorFlow matmuls."""
    return {"fp32": measure_matmul_peak("float32", size, repeats),
            "bf16": measure_matmul_peak("bfloat16", size, repeats)}


# ---------------------------------------------------------------------------------------------
# Alternating rounds
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Work:
    """What one timed call did: examples processed, model FLOPs on real (non-padding) tokens,
    FLOPs of the shapes actually run (padding included), and per-request latencies if any."""

    examples: int
    model_flops: float = 0.0
    executed_flops: float = 0.0
    latencies: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Contender:
    """One configuration under test. `run` does one round's work and returns a Work;
    `warmup` (untimed) compiles / traces / warms caches first. `precision` ("fp32", "bf16" or
    None) picks the matmul peak for MFU and the peer its ratio is taken against."""

    name: str
    side: str
    run: Callable[[], Work]
    warmup: Optional[Callable[[], object]] = None
    precision: Optional[str] = None
    description: str = ""

    def __post_init__(self):
        if self.side not in SIDES:
            raise ValueError(f"contender {self.name!r}: side must be one of {SIDES}, got {self.side!r}")


@dataclasses.dataclass
class Sample:
    """One timed round of one contender."""

    round: int
    seconds: float
    work: Work


def interleave(ours: list, peers: list) -> list:
    """ours[0], peers[0], ours[1], peers[1], ... (the longer list's rest at the end)."""
    order = []
    for i in range(max(len(ours), len(peers))):
        order += ours[i:i + 1] + peers[i:i + 1]
    return order


def run_rounds(contenders: list, rounds: int, log=print) -> dict:
    """Warm every contender up, then time `rounds` rounds, each running all contenders in
    order. Returns {name: [Sample per round]}."""
    if rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {rounds}")
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise ValueError(f"contender names must be unique, got {names}")
    for contender in contenders:
        if contender.warmup is not None:
            start = time.perf_counter()
            contender.warmup()
            log(f"warmup {contender.name}: {time.perf_counter() - start:.1f}s")
    samples = {c.name: [] for c in contenders}
    for r in range(rounds):
        for contender in contenders:
            start = time.perf_counter()
            work = contender.run()
            seconds = time.perf_counter() - start
            samples[contender.name].append(Sample(r, seconds, work))
            log(f"round {r + 1}/{rounds} {contender.name}: {work.examples / seconds:.1f} ex/s ({seconds:.2f}s)")
    return samples


def _peer_for(contender: Contender, summaries: dict, contenders: list) -> Optional[str]:
    """The peer of the same precision, else the fastest peer."""
    peers = [c for c in contenders if c.side == "peer"]
    same = [c for c in peers if c.precision == contender.precision]
    pool = same or peers
    if not pool:
        return None
    return max(pool, key=lambda c: summaries[c.name]["examples_per_s"]).name


def summarize(contenders: list, samples: dict, peaks: Optional[dict] = None) -> list:
    """One dict per contender: median / min / max examples/s, median model FLOP/s, MFU against
    the peak of its precision, median and p90 request latency (if measured), and ratios
    ours / peer: of median throughputs ("ratio"), median of same-round throughput ratios
    ("ratio_paired") and of median latencies ("latency_ratio": below 1 is faster)."""
    summaries = {}
    for c in contenders:
        rates = [s.work.examples / s.seconds for s in samples[c.name]]
        flop_rates = [s.work.model_flops / s.seconds for s in samples[c.name]]
        executed = [s.work.executed_flops / s.seconds for s in samples[c.name]]
        latencies = [x for s in samples[c.name] for x in s.work.latencies]
        peak = (peaks or {}).get(c.precision)
        row = {
            "name": c.name, "side": c.side, "precision": c.precision, "description": c.description,
            "rounds": len(rates),
            "examples_per_s": statistics.median(rates),
            "examples_per_s_min": min(rates), "examples_per_s_max": max(rates),
            "model_flops_per_s": statistics.median(flop_rates),
            "executed_flops_per_s": statistics.median(executed),
            "mfu": statistics.median(flop_rates) / peak if peak and any(flop_rates) else None,
            "latency_ms_median": 1e3 * statistics.median(latencies) if latencies else None,
            "latency_ms_p90": 1e3 * float(np.percentile(latencies, 90)) if latencies else None,
            "seconds_per_round": [s.seconds for s in samples[c.name]],
            "examples_per_round": [s.work.examples for s in samples[c.name]],
        }
        summaries[c.name] = row
    for c in contenders:
        row = summaries[c.name]
        peer = _peer_for(c, summaries, contenders) if c.side == "ours" else None
        row["ratio_vs"] = peer
        row["ratio"] = row["examples_per_s"] / summaries[peer]["examples_per_s"] if peer else None
        # Median over rounds of the same-round ratio: drift between rounds cancels.
        row["ratio_paired"] = statistics.median(
            (a.work.examples / a.seconds) / (b.work.examples / b.seconds)
            for a, b in zip(samples[c.name], samples[peer])
        ) if peer else None
        peer_latency = summaries[peer]["latency_ms_median"] if peer else None
        row["latency_ratio"] = (row["latency_ms_median"] / peer_latency
                                if peer_latency and row["latency_ms_median"] else None)
    return [summaries[c.name] for c in contenders]


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

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
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
        flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
        info["cpu"] = names[0] if names else platform.processor()
        info["cpu_features"] = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
    except OSError:
        info["cpu"] = platform.processor()
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
    for title, contenders, samples in sections:
        rows = summarize(contenders, samples, peaks)
        results[title] = rows
        log(f"\n{title}")
        log(format_table(rows, unit=unit))
    if peaks:
        log(format_peaks(peaks))
    payload = {"bench": bench, "settings": settings, "machine": machine_info(), "peaks_flops_per_s": peaks,
               "results": results, **(extra or {})}
    path = write_results(results_dir, bench, payload)
    log(f"results: {path}")
    return path


# ---------------------------------------------------------------------------------------------
# The real ESCI sample
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SamplePairs:
    """Formatted (query, product text) pairs of the sample, with labels and query ids."""

    frame: object  # the merged pandas frame (esci_tf.data.reader.load_esci)
    queries: list
    products: list
    targets: np.ndarray  # [N, 4] float32 one-hot

    def __len__(self):
        return len(self.queries)


def sample_paths(data_dir) -> tuple:
    """(examples.parquet, products.parquet) of the sample dir; exits naming the dir if absent."""
    data_dir = pathlib.Path(data_dir)
    examples, products = data_dir / "examples.parquet", data_dir / "products.parquet"
    for path in (examples, products):
        if not path.exists():
            sys.exit(f"bench: ESCI sample file {path} not found (pass --data_dir, the directory holding "
                     "examples.parquet and products.parquet)")
    return examples, products


def load_sample_pairs(data_dir, max_pairs: Optional[int] = None) -> SamplePairs:
    """The sample's pairs, formatted with esci_tf.data.template.format_pairs (paper template),
    in file order; the first `max_pairs` only when given."""
    from esci_tf.data.reader import load_esci
    from esci_tf.data.template import format_pairs
    from esci_tf.labels import one_hot

    examples, products = sample_paths(data_dir)
    frame, _ = load_esci(examples, products, task="all")
    if max_pairs is not None:
        if max_pairs < 1:
            raise ValueError(f"--max_pairs must be >= 1, got {max_pairs}")
        frame = frame.iloc[:max_pairs].reset_index(drop=True)
    queries, product_texts = format_pairs(frame)
    return SamplePairs(frame, list(queries), list(product_texts), one_hot(frame["label"].to_numpy()))


def define_common_flags(flags, default_rounds: int = 5):
    """Flags every benchmark takes."""
    flags.DEFINE_integer("rounds", default_rounds, "Timed rounds; each runs every contender once, alternating.")
    flags.DEFINE_string("data_dir", str(DEFAULT_DATA_DIR), "Directory of the ESCI sample's parquet files.")
    flags.DEFINE_string("results_dir", str(DEFAULT_RESULTS_DIR), "Where <bench>.json is written.")
    flags.DEFINE_integer("max_pairs", None, "Use only the sample's first N pairs (quick smoke runs).")
    flags.DEFINE_integer("max_length", 128, "Tokens per packed (query, product) pair.")
    flags.DEFINE_integer("peak_size", 2048, "Matrix size of the fp32/bf16 matmul peak measurement (0: skip).")
