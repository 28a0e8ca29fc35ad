"""Alternating timed rounds and their summary.

Every benchmark runs "contenders" (ours and the peer, transformers + PyTorch) in the same
process, alternating within each round (ours, peer, ours, peer, ...) so that machine drift
affects both; results are medians over rounds and ratios ours / peer, each "ours" contender
paired with the peer of its precision.
"""

import dataclasses
import statistics
import time
from typing import Callable, Optional

import numpy as np

SIDES = ("ours", "peer")


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
