"""Training examples/s: esci_tf vs transformers + PyTorch, same model, weights and pairs.

    python -m bench.train_throughput --model minilm --rounds 5 --steps 10

Ours: esci_tf CrossEncoder trained through TrainingModel.fit with keras AdamW, in each --ours
configuration (fp32/bf16, XLA, length buckets). Peer: AutoModelForSequenceClassification with
torch AdamW, per-batch dynamic padding, fp32 and bf16 autocast. Both train on soft-label
cross-entropy over the real ESCI sample's pairs (batch --batch_size, --max_length tokens), in
alternating rounds of --steps steps each. Prints a table; writes results/train_throughput_<model>.json.
"""

from absl import app, flags

from bench import batching, configs, flops, harness, models, report
from bench.sample import define_common_flags, load_sample_pairs

FLAGS = flags.FLAGS
WEIGHT_DECAY = 0.01


def define_flags():
    define_common_flags(flags)
    flags.DEFINE_enum("model", "minilm", models.MODEL_NAMES, "Model to train (see bench/models.py).")
    flags.DEFINE_integer("steps", 10, "Training steps per contender per round.")
    flags.DEFINE_integer("batch_size", 32, "Pairs per training step.")
    flags.DEFINE_string("ours", "fp32+xla,bf16,bf16+xla,fp32+xla+buckets,bf16+buckets",
                        "Comma-separated ours configurations PRECISION[+xla][+buckets][+keras_kernels][+lazy] (bench/configs.py).")
    flags.DEFINE_string("peers", "fp32,bf16", "Comma-separated peer precisions (fp32, bf16; empty: none).")
    flags.DEFINE_string("buckets", "32,48,64,80,96,112,128", "Static length buckets of the +buckets configurations.")
    flags.DEFINE_float("learning_rate", 2e-5, "AdamW learning rate (both sides).")
    flags.DEFINE_integer("seed", 0, "Seed of the batch order.")


def _work(shape, lengths, batches, batch_size) -> harness.Work:
    return harness.Work(
        examples=batch_size * len(batches),
        model_flops=sum(flops.train_flops(shape, lengths[b.indices]) for b in batches),
        executed_flops=sum(flops.train_flops(shape, [b.width] * batch_size) for b in batches),
    )


def ours_contender(spec, config, sample, buckets) -> harness.Contender:
    """esci_tf CrossEncoder + TrainingModel + keras AdamW, fit() on a tf.data pipeline."""
    import keras

    from esci_tf.training.lazy_adamw import LazyAdamW
    from esci_tf.training.training_model import TrainingModel

    trainer = TrainingModel(models.build_ours(spec, config.policy, config.kernels))
    optimizer_class = LazyAdamW if config.lazy else keras.optimizers.AdamW
    trainer.compile(optimizer=optimizer_class(learning_rate=FLAGS.learning_rate, weight_decay=WEIGHT_DECAY),
                    jit_compile=config.xla)
    size = FLAGS.batch_size
    if config.buckets:
        cycle = batching.BatchCycle(batching.bucketed_batches(sample.lengths, size, FLAGS.seed, buckets))
        fixed_width = None
    else:
        cycle = batching.BatchCycle(batching.shuffled_batches(sample.lengths, size, FLAGS.seed, FLAGS.max_length))
        fixed_width = FLAGS.max_length

    def fit(batches):
        trainer.fit(batching.keras_dataset(sample.features, sample.targets, batches, size, fixed_width),
                    epochs=1, verbose=0, shuffle=False)
        return _work(spec.shape, sample.lengths, batches, size)

    return harness.Contender(config.name, "ours", run=lambda: fit(cycle.take(FLAGS.steps)),
                             warmup=lambda: fit(cycle.one_per_width()), precision=config.precision,
                             description=config.description)


def peer_contender(spec, precision, sample) -> harness.Contender:
    """transformers model + torch AdamW, each batch padded to its longest pair."""
    import torch

    model = models.build_peer(spec)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=FLAGS.learning_rate, weight_decay=WEIGHT_DECAY)
    targets = torch.from_numpy(sample.targets)
    size = FLAGS.batch_size
    cycle = batching.BatchCycle(batching.shuffled_batches(sample.lengths, size, FLAGS.seed))

    def train(batches):
        for batch in batches:
            inputs = models.peer_inputs(spec, batching.slice_batch(sample.features, batch), batch.width)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(**inputs).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), targets[batch.indices])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return _work(spec.shape, sample.lengths, batches, size)

    description = "transformers + torch AdamW, dynamic padding, " + (
        "bf16 autocast" if precision == "bf16" else "fp32")
    return harness.Contender(f"peer_{precision}", "peer", run=lambda: train(cycle.take(FLAGS.steps)),
                             warmup=lambda: train(cycle.take(2)), precision=precision, description=description)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    spec, ours, peers, buckets = configs.parse_run_flags(
        FLAGS, {"--steps": FLAGS.steps, "--batch_size": FLAGS.batch_size})
    pairs = load_sample_pairs(FLAGS.data_dir, FLAGS.max_pairs)
    sample = models.encode_sample(spec, pairs, FLAGS.max_length)
    lengths = sample.length_summary(FLAGS.max_length)
    print(f"{len(sample)} pairs; packed lengths {lengths}")
    peaks = flops.measure_peaks(FLAGS.peak_size) if FLAGS.peak_size else None
    contenders = harness.interleave([ours_contender(spec, c, sample, buckets) for c in ours],
                                    [peer_contender(spec, p, sample) for p in peers])
    samples = harness.run_rounds(contenders, FLAGS.rounds)
    settings = dict(model=FLAGS.model, rounds=FLAGS.rounds, steps=FLAGS.steps, batch_size=FLAGS.batch_size,
                    max_length=FLAGS.max_length, buckets=list(buckets), learning_rate=FLAGS.learning_rate,
                    weight_decay=WEIGHT_DECAY, pairs=len(sample), seed=FLAGS.seed, unit="training examples/s")
    report.report(f"train_throughput_{FLAGS.model}", settings, [("training examples/s", contenders, samples)],
                  peaks, FLAGS.results_dir,
                  extra={"length_distribution": lengths})


if __name__ == "__main__":
    from esci_tf import cli

    define_flags()
    cli.run(main, "bench.train_throughput")
