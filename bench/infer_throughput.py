"""Inference: scoring examples/s on the ESCI sample and the latency of one request (one query
with --products_per_request products), esci_tf vs transformers + PyTorch.

    python -m bench.infer_throughput --model minilm --rounds 5 --batches 20 --requests 10

Ours: the CrossEncoder saved as .keras and loaded back (keras.saving.load_model), scoring with
model.predict on PairPreprocessor-encoded batches; a request is PairPreprocessor on its strings +
predict_on_batch. For pretrained models the request latency is also timed through the path users
deploy to TF Serving, as contenders named ours_savedmodel_<precision>: the SavedModel of
esci_tf.serving through its raw-fields serving_default (the pairs' product fields in, scores
out; cleaning, template and tokenization in the graph), with the preprocessing share of a
request printed (the FieldsPreprocessor alone, timed on the same requests). Peer:
AutoModelForSequenceClassification under torch.inference_mode, fp32 and bf16 autocast, each
batch padded to its longest pair; a request is the fast tokenizer + the model. Both turn
logits into the ranking score softmax @ (1, 0.1, 0.01, 0). ONNX Runtime peers (--onnx; bench/onnx_peer.py):
the same torch weights exported with torch.onnx, fp32 and dynamic int8, same inputs and padding,
their logits' largest difference from torch fp32 printed and stored. Ours as TFLite (--tflite
float32,int8): the fp32 model converted per --buckets width, on LiteRT + XNNPACK (the
trainers.predict --runtime=tflite path), int8 paired with the ONNX Runtime int8 peer. Prints two tables; writes
results/infer_throughput_<model>.json.
"""

import os
import tempfile
import time

import numpy as np
from absl import app, flags

from bench import batching, configs, flops, harness, models, report
from bench.sample import define_common_flags, load_sample_pairs
from esci_tf.labels import ranking_score

FLAGS = flags.FLAGS
OURS_PATH = ("CrossEncoder saved as .keras and reloaded; throughput: model.predict on PairPreprocessor-encoded "
             "batches; request: PairPreprocessor + predict_on_batch, and (ours_savedmodel_*) the exported "
             "SavedModel's raw-fields serving_default signature, product fields in, scores out")


def define_flags():
    define_common_flags(flags)
    flags.DEFINE_enum("model", "minilm", models.MODEL_NAMES, "Model to score with (see bench/models.py).")
    flags.DEFINE_integer("batches", 20, "Scoring batches per contender per round.")
    flags.DEFINE_integer("batch_size", 32, "Pairs per scoring batch.")
    flags.DEFINE_integer("requests", 10, "Single-query requests per contender per round.")
    flags.DEFINE_integer("products_per_request", 40, "Products scored for the query of one request.")
    flags.DEFINE_string("ours", "fp32,fp32+xla,bf16,bf16+xla,bf16+buckets",
                        "Comma-separated ours configurations PRECISION[+xla][+buckets][+keras_kernels][+lazy] (bench/configs.py).")
    flags.DEFINE_string("peers", "fp32,bf16", "Comma-separated peer precisions (fp32, bf16; empty: none).")
    flags.DEFINE_string("onnx", "fp32,int8", "ONNX Runtime peers (the torch peer's weights exported with "
                        "torch.onnx): fp32, int8 (dynamic quantization); empty: none.")
    flags.DEFINE_string("buckets", "32,48,64,80,96,112,128", "Static length buckets of the +buckets configurations "
                        "and of the --tflite models.")
    flags.DEFINE_string("tflite", "", "Ours as TFLite models on LiteRT + XNNPACK (esci_tf.serving.tflite, what "
                        "trainers.predict --runtime=tflite runs): float32, int8 (dynamic range); one fixed-shape "
                        "model per --buckets width at --batch_size rows; empty: none.")
    flags.DEFINE_integer("seed", 0, "Seed of the batch order.")


def make_requests(pairs, size: int) -> list:
    """(row indices) of one request per query, the queries with the most products first; a
    query with fewer than `size` products has its rows repeated up to `size`."""
    groups = pairs.frame.groupby("query_id", sort=False).indices
    ranked = sorted(groups.values(), key=len, reverse=True)
    return [np.resize(rows, size) for rows in ranked]


def _softmax_scores(logits) -> np.ndarray:
    return ranking_score(np.asarray(logits, np.float32), from_logits=True)


def _forward_work(spec, lengths, widths, latencies=()) -> harness.Work:
    return harness.Work(examples=len(lengths), model_flops=flops.forward_flops(spec.shape, lengths),
                        executed_flops=flops.forward_flops(spec.shape, widths), latencies=list(latencies))


def _batches_work(spec, sample, batches) -> harness.Work:
    indices = np.concatenate([b.indices for b in batches])
    widths = np.concatenate([[b.width] * len(b.indices) for b in batches])
    return _forward_work(spec, sample.lengths[indices], widths)


def _timed_requests(spec, pairs, request_rows, score_request) -> harness.Work:
    """Times score_request(queries, products) -> (real lengths [n], width) per request."""
    latencies, lengths, widths = [], [], []
    for rows in request_rows:
        start = time.perf_counter()
        real, width = score_request([pairs.queries[i] for i in rows], [pairs.products[i] for i in rows])
        latencies.append(time.perf_counter() - start)
        lengths.append(real)
        widths += [width] * len(rows)
    return _forward_work(spec, np.concatenate(lengths), widths, latencies)


def _saved_and_loaded(model, policy_name):
    """The model after a .keras save / load round trip (what a deployment loads)."""
    import keras

    with tempfile.TemporaryDirectory(prefix="esci_bench_") as tmp:
        path = os.path.join(tmp, f"{policy_name}.keras")
        model.save(path)
        return keras.saving.load_model(path)


def ours_contenders(spec, config, sample, pairs, requests, buckets, preprocessor) -> tuple:
    """(throughput contender, request-latency contender) of one ours configuration."""
    model = _saved_and_loaded(models.build_ours(spec, config.policy, config.kernels), config.policy)
    model.compile(jit_compile=config.xla)
    size, length = FLAGS.batch_size, FLAGS.max_length
    if config.buckets:
        cycle = batching.BatchCycle(batching.bucketed_batches(sample.lengths, size, FLAGS.seed, buckets))
    else:
        cycle = batching.BatchCycle(batching.shuffled_batches(sample.lengths, size, FLAGS.seed, length))

    def score(batches):
        dataset = batching.keras_dataset(sample.features, None, batches, size, None if config.buckets else length)
        _softmax_scores(model.predict(dataset, verbose=0))
        return _batches_work(spec, sample, batches)

    def score_request(queries, products):
        features = models.adapt_ids(spec, {k: v.numpy() for k, v in preprocessor(queries, products).items()})
        real = features["padding_mask"].sum(axis=1)
        width = batching.bucket_width(int(real.max()), buckets) if config.buckets else length
        _softmax_scores(model.predict_on_batch({k: v[:, :width] for k, v in features.items()}))
        return real, width

    request_cycle = batching.BatchCycle(requests)

    def serve(request_rows):
        return _timed_requests(spec, pairs, request_rows, score_request)

    def warm_requests():
        serve(requests[:1])
        if config.buckets:  # compile every bucket width a request may need
            rows = requests[0]
            features = preprocessor([pairs.queries[i] for i in rows], [pairs.products[i] for i in rows])
            features = models.adapt_ids(spec, {k: v.numpy() for k, v in features.items()})
            for width in buckets:
                model.predict_on_batch({k: v[:, :width] for k, v in features.items()})

    throughput = harness.Contender(config.name, "ours", run=lambda: score(cycle.take(FLAGS.batches)),
                                   warmup=lambda: score(cycle.one_per_width()), precision=config.precision,
                                   description=config.description)
    latency = harness.Contender(config.name, "ours", run=lambda: serve(request_cycle.take(FLAGS.requests)),
                                warmup=warm_requests, precision=config.precision,
                                description=config.description)
    return throughput, latency


TFLITE_PRECISIONS = {"float32": "fp32", "int8": "int8"}  # the peer each variant's ratio is taken against


def tflite_contenders(spec, variants, sample, pairs, requests, buckets, preprocessor, directory) -> list:
    """(throughput, latency) per TFLite variant: the float32 model converted once per bucket
    width at --batch_size rows (esci_tf.serving.tflite.write_tflite), scored by TFLiteScorer on
    the LiteRT interpreter (XNNPACK, one thread per core). Throughput: the +buckets batches;
    a request: PairPreprocessor on its strings, then its pairs grouped by bucket, each group
    padded to the fixed batch (as trainers.predict --runtime=tflite does)."""
    from esci_tf.preprocessing.frame_encoder import FrameEncoder
    from esci_tf.serving import tflite

    model = models.build_ours(spec, "float32")
    start = time.perf_counter()
    folder = tflite.write_tflite(model, FrameEncoder(preprocessor), directory, buckets, FLAGS.batch_size, variants)
    print(f"tflite: {len(variants) * len(buckets)} models converted in {time.perf_counter() - start:.0f}s")
    result = []
    for variant in variants:
        scorer = tflite.TFLiteScorer(folder, variant)
        cycle = batching.BatchCycle(batching.bucketed_batches(sample.lengths, FLAGS.batch_size, FLAGS.seed, buckets))

        def score(batches, scorer=scorer):
            for batch in batches:
                _softmax_scores(scorer.run_batch(batching.slice_batch(sample.features, batch), batch.width))
            return _batches_work(spec, sample, batches)

        def score_request(queries, products, scorer=scorer):
            features = models.adapt_ids(spec, {k: v.numpy() for k, v in preprocessor(queries, products).items()})
            real = features["padding_mask"].sum(axis=1)
            _softmax_scores(scorer.logits(features))
            return real, int(tflite.bucket_of(real, scorer.buckets).max())

        def serve(request_rows, score_request=score_request):
            return _timed_requests(spec, pairs, request_rows, score_request)

        request_cycle = batching.BatchCycle(requests)
        description = (f"TFLite {variant} on LiteRT (ai-edge-litert) XNNPACK, {scorer.threads} threads, fixed "
                       f"[{FLAGS.batch_size}, bucket] shapes" + (", dynamic-range int8" if variant == "int8" else ""))
        name, precision = f"ours_tflite_{variant}", TFLITE_PRECISIONS[variant]
        throughput = harness.Contender(name, "ours", run=lambda score=score, cycle=cycle: score(cycle.take(FLAGS.batches)),
                                       warmup=lambda score=score, cycle=cycle: score(cycle.one_per_width()),
                                       precision=precision, description=description)
        latency = harness.Contender(name, "ours", run=lambda serve=serve, c=request_cycle: serve(c.take(FLAGS.requests)),
                                    warmup=lambda serve=serve: serve(requests[:2]), precision=precision,
                                    description=description)
        result.append((throughput, latency))
    return result


def savedmodel_contender(spec, config, sample, pairs, requests) -> tuple:
    """Request latency through the exported SavedModel's raw-fields serving_default
    (esci_tf.serving.export), the TF Serving path: the pairs' raw product fields in, scores out.
    Each timed request is also run through the FieldsPreprocessor alone (the featurizer the
    export calls); returns (contender, {"request": [s], "preprocessing": [s]}) of the timed runs."""
    import tensorflow as tf

    from esci_tf.preprocessing.template import TemplateSettings
    from esci_tf.preprocessing.fields_preprocessor import FieldsPreprocessor
    from esci_tf.serving.export import export_saved_model, featurizer, serving_inputs

    fields_preprocessor = FieldsPreprocessor(models.ours_preprocessor(FLAGS.max_length), TemplateSettings())
    model = models.build_ours(spec, config.policy, config.kernels)
    export_dir = export_saved_model(model, fields_preprocessor, tempfile.mkdtemp(prefix="esci_bench_savedmodel_"))
    served = tf.saved_model.load(export_dir).signatures["serving_default"]
    features = featurizer(fields_preprocessor)
    inputs = serving_inputs(pairs.frame)
    request_cycle = batching.BatchCycle(requests)
    timings = {"request": [], "preprocessing": []}

    def serve(request_rows, timed=True):
        latencies, lengths = [], []
        for rows in request_rows:
            request = {name: tf.constant(values[rows]) for name, values in inputs.items()}
            start = time.perf_counter()
            served(**request)["score"].numpy()
            latencies.append(time.perf_counter() - start)
            start = time.perf_counter()
            features(request)["token_ids"].numpy()
            if timed:
                timings["request"].append(latencies[-1])
                timings["preprocessing"].append(time.perf_counter() - start)
            lengths.append(sample.lengths[rows])
        real = np.concatenate(lengths)
        return _forward_work(spec, real, [FLAGS.max_length] * len(real), latencies)

    contender = harness.Contender(config.name.replace("ours_", "ours_savedmodel_", 1), "ours",
                                  run=lambda: serve(request_cycle.take(FLAGS.requests)),
                                  warmup=lambda: serve(requests[:1], timed=False), precision=config.precision,
                                  description="SavedModel serving_default (raw product fields in, scores out), "
                                  + config.precision)
    return contender, timings


def preprocessing_share(name: str, timings: dict) -> dict:
    """Median request latency of a SavedModel contender, its FieldsPreprocessor's median alone,
    and the share (printed)."""
    request, preprocessing = float(np.median(timings["request"])), float(np.median(timings["preprocessing"]))
    share = preprocessing / request if request > 0 else float("nan")
    print(f"{name}: preprocessing (FieldsPreprocessor: cleaning, template, tokenization) {preprocessing * 1e3:.1f} ms "
          f"of a {request * 1e3:.1f} ms request ({share:.0%}, medians over {len(timings['request'])} requests)")
    return {"request_ms": request * 1e3, "preprocessing_ms": preprocessing * 1e3, "share": share}


def peer_contenders(spec, precision, sample, pairs, requests, tokenizer) -> tuple:
    """(throughput, latency) contenders of transformers + torch at one precision."""
    import torch

    model = models.build_peer(spec)
    model.eval()
    cycle = batching.BatchCycle(batching.shuffled_batches(sample.lengths, FLAGS.batch_size, FLAGS.seed))
    bf16 = precision == "bf16"

    def forward(inputs):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(**inputs).logits.float().numpy()

    def score(batches):
        for batch in batches:
            _softmax_scores(forward(models.peer_inputs(spec, batching.slice_batch(sample.features, batch),
                                                       batch.width)))
        return _batches_work(spec, sample, batches)

    def score_request(queries, products):
        encoded = tokenizer(queries, products, truncation=True, max_length=FLAGS.max_length, padding=True,
                            return_tensors="np")
        features = models.adapt_ids(spec, {"token_ids": encoded["input_ids"], "segment_ids": encoded["token_type_ids"],
                                           "padding_mask": encoded["attention_mask"]})
        width = features["token_ids"].shape[1]
        _softmax_scores(forward(models.peer_inputs(spec, features, width)))
        return features["padding_mask"].sum(axis=1), width

    request_cycle = batching.BatchCycle(requests)

    def serve(request_rows):
        return _timed_requests(spec, pairs, request_rows, score_request)

    description = "transformers, torch.inference_mode, dynamic padding, " + ("bf16 autocast" if bf16 else "fp32")
    name = f"peer_{precision}"
    throughput = harness.Contender(name, "peer", run=lambda: score(cycle.take(FLAGS.batches)),
                                   warmup=lambda: score(cycle.take(2)), precision=precision, description=description)
    latency = harness.Contender(name, "peer", run=lambda: serve(request_cycle.take(FLAGS.requests)),
                                warmup=lambda: serve(requests[:2]), precision=precision, description=description)
    return throughput, latency


def onnx_contenders(spec, precisions, sample, pairs, requests, tokenizer, directory) -> tuple:
    """((throughput, latency) per ONNX Runtime precision, logit differences from torch fp32):
    the same weights, inputs, padding and score as peer_contenders."""
    from bench import onnx_peer

    model = models.build_peer(spec)
    paths = onnx_peer.export(model, directory, spec.uses_segment_ids)
    check = batching.shuffled_batches(sample.lengths, FLAGS.batch_size, FLAGS.seed)[:2]
    result, differences = [], {}
    for precision in precisions:
        scorer = onnx_peer.OnnxScorer(paths[precision])
        cycle = batching.BatchCycle(batching.shuffled_batches(sample.lengths, FLAGS.batch_size, FLAGS.seed))

        def score(batches, scorer=scorer):
            for batch in batches:
                _softmax_scores(scorer(models.peer_inputs(spec, batching.slice_batch(sample.features, batch),
                                                          batch.width)))
            return _batches_work(spec, sample, batches)

        def score_request(queries, products, scorer=scorer):
            encoded = tokenizer(queries, products, truncation=True, max_length=FLAGS.max_length, padding=True,
                                return_tensors="np")
            features = models.adapt_ids(spec, {"token_ids": encoded["input_ids"],
                                               "segment_ids": encoded["token_type_ids"],
                                               "padding_mask": encoded["attention_mask"]})
            width = features["token_ids"].shape[1]
            _softmax_scores(scorer(models.peer_inputs(spec, features, width)))
            return features["padding_mask"].sum(axis=1), width

        import torch

        gaps = []
        for batch in check:
            inputs = models.peer_inputs(spec, batching.slice_batch(sample.features, batch), batch.width)
            with torch.inference_mode():
                reference = model(**inputs).logits.float().numpy()
            got = scorer(inputs)
            gaps.append((float(np.abs(got - reference).max()),
                         float(np.abs(_softmax_scores(got) - _softmax_scores(reference)).max())))
        differences[precision] = {"max_abs_logit_diff_vs_torch_fp32": max(g[0] for g in gaps),
                                  "max_abs_score_diff_vs_torch_fp32": max(g[1] for g in gaps)}
        print(f"onnx {precision}: vs torch fp32 on {len(check)} batches: max |logit diff| "
              f"{differences[precision]['max_abs_logit_diff_vs_torch_fp32']:.4f}, max |score diff| "
              f"{differences[precision]['max_abs_score_diff_vs_torch_fp32']:.4f}")
        request_cycle = batching.BatchCycle(requests)

        def serve(request_rows, score_request=score_request):
            return _timed_requests(spec, pairs, request_rows, score_request)

        description = f"ONNX Runtime {onnxruntime_version()} CPU, torch.onnx export of the peer's weights, " + (
            "fp32" if precision == "fp32" else "dynamic int8 (quantize_dynamic, QInt8 weights)") + ", dynamic padding"
        name = f"peer_onnx_{precision}"
        throughput = harness.Contender(name, "peer", run=lambda score=score, cycle=cycle: score(cycle.take(FLAGS.batches)),
                                       warmup=lambda score=score, cycle=cycle: score(cycle.take(2)),
                                       precision=precision, description=description)
        latency = harness.Contender(name, "peer", run=lambda serve=serve, c=request_cycle: serve(c.take(FLAGS.requests)),
                                    warmup=lambda serve=serve: serve(requests[:2]), precision=precision,
                                    description=description)
        result.append((throughput, latency))
    return result, differences


def onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    spec, ours, peers, buckets = configs.parse_run_flags(
        FLAGS, {"--batches": FLAGS.batches, "--batch_size": FLAGS.batch_size, "--requests": FLAGS.requests, "--products_per_request": FLAGS.products_per_request})
    pairs = load_sample_pairs(FLAGS.data_dir, FLAGS.max_pairs)
    sample = models.encode_sample(spec, pairs, FLAGS.max_length)
    requests = make_requests(pairs, FLAGS.products_per_request)
    full_requests = sum(len(set(r)) >= FLAGS.products_per_request for r in requests)
    print(f"{len(sample)} pairs; {len(requests)} requests ({full_requests} with >= {FLAGS.products_per_request} "
          f"distinct products); ours path: {OURS_PATH}")
    peaks = flops.measure_peaks(FLAGS.peak_size) if FLAGS.peak_size else None
    preprocessor = models.ours_preprocessor(FLAGS.max_length)
    tokenizer = models.peer_tokenizer() if peers else None
    ours_pairs = [ours_contenders(spec, c, sample, pairs, requests, buckets, preprocessor) for c in ours]
    tflite = [v for v in FLAGS.tflite.split(",") if v]
    unknown = sorted(set(tflite) - set(TFLITE_PRECISIONS))
    if unknown:
        raise app.UsageError(f"--tflite takes {', '.join(TFLITE_PRECISIONS)}, got {', '.join(unknown)}")
    if tflite:
        ours_pairs += tflite_contenders(spec, tflite, sample, pairs, requests, buckets, preprocessor,
                                        tempfile.mkdtemp(prefix="esci_tflite_"))
    peer_pairs = [peer_contenders(spec, p, sample, pairs, requests, tokenizer) for p in peers]
    onnx = [p for p in FLAGS.onnx.split(",") if p]
    unknown = sorted(set(onnx) - {"fp32", "int8"})
    if unknown:
        raise app.UsageError(f"--onnx takes fp32 and int8, got {', '.join(unknown)}")
    onnx_dir = tempfile.mkdtemp(prefix="esci_onnx_")
    onnx_differences = {}
    if onnx:
        tokenizer = tokenizer or models.peer_tokenizer()
        onnx_pairs, onnx_differences = onnx_contenders(spec, onnx, sample, pairs, requests, tokenizer, onnx_dir)
        peer_pairs += onnx_pairs
    # The SavedModel tokenises strings itself, so only models that read their own vocabulary's ids.
    served, served_timings = [], []
    for c in ours:
        if spec.pretrained and not c.xla and not c.buckets:
            contender, timings = savedmodel_contender(spec, c, sample, pairs, requests)
            served.append(contender)
            served_timings.append(timings)
    sections = []
    for index, title in enumerate(("scoring examples/s (batch %d)" % FLAGS.batch_size,
                                   "one request: 1 query x %d products" % FLAGS.products_per_request)):
        contenders = harness.interleave([p[index] for p in ours_pairs] + (served if index == 1 else []),
                                        [p[index] for p in peer_pairs])
        print(f"\n== {title}")
        sections.append((title, contenders, harness.run_rounds(contenders, FLAGS.rounds)))
    shares = {c.name: preprocessing_share(c.name, t) for c, t in zip(served, served_timings)}
    settings = dict(model=FLAGS.model, rounds=FLAGS.rounds, batches=FLAGS.batches, batch_size=FLAGS.batch_size,
                    requests=FLAGS.requests, products_per_request=FLAGS.products_per_request,
                    max_length=FLAGS.max_length, buckets=list(buckets), pairs=len(sample), seed=FLAGS.seed,
                    ours_path=OURS_PATH, full_requests=full_requests)
    report.report(f"infer_throughput_{FLAGS.model}", settings, sections, peaks, FLAGS.results_dir,
                  extra={"length_distribution": sample.length_summary(FLAGS.max_length),
                         "savedmodel_preprocessing_share": shares, "onnx_vs_torch_fp32": onnx_differences})


if __name__ == "__main__":
    from esci_tf import cli

    define_flags()
    cli.run(main, "bench.infer_throughput")
