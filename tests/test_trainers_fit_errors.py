"""trainers.fit as the user runs it: settings that cannot work stop it with one line naming the flag
before any data is read or TFRecords built; bad inputs name the file."""

import pytest
from absl import flags

from cli_fixtures import assert_one_line_error, run_module
from esci_tf import cli
from esci_tf.training.tpu_machine import has_local_tpu
from run_fixtures import TINY_CONFIG, fit_args
from trainers import fit

SYNTHETIC = ("--synthetic_queries=12", "--backbone=xlm_roberta", "--max_length=24", "--batch_size=8",
             "--noprogress_bar", "--strategy=cpu")


@pytest.mark.skipif(has_local_tpu(), reason="this machine has a TPU")
def test_tpu_strategy_without_a_tpu_fails_before_the_data(tmp_path):
    result = run_module("trainers.fit", *SYNTHETIC, f"--backbone_config={TINY_CONFIG}", "--strategy=tpu",
                        f"--output_dir={tmp_path / 'run'}")
    assert_one_line_error(result, "trainers.fit", "--strategy=tpu: no TPU on this machine", code=cli.FLAG_EXIT)
    assert not (tmp_path / "run" / "data").exists(), "no TFRecords were built"


def test_checkpoint_with_backbone_config_fails_before_the_data(tmp_path):
    result = run_module("trainers.fit", *SYNTHETIC, f"--backbone_config={TINY_CONFIG}",
                        "--checkpoint=xlm_roberta_base_multi", f"--output_dir={tmp_path / 'run'}")
    assert_one_line_error(result, "trainers.fit", "--checkpoint=xlm_roberta_base_multi and --backbone_config",
                          code=cli.FLAG_EXIT)
    assert not (tmp_path / "run" / "data").exists()


@pytest.mark.parametrize("args, message", [
    (("--checkpoint=xlm_roberta_base_multi",), "--max_length=4: must be >= 8"),  # the weights replaced
    (("--examples=e.parquet", "--products=p.parquet"), "--max_length=4: must be >= 8"),  # the data replaced
    (("--backbone_config=",), "give --checkpoint (pretrained) or --backbone_config (random init)"),  # cleared
    (("--backbone_config={}", "--checkpoint=x"), "--checkpoint=x and --backbone_config: give one"),
])
def test_the_command_line_after_a_flagfile_replaces_its_alternative(tmp_path, args, message):
    """demo.flags sets --backbone_config and --synthetic_queries; --max_length=4 is the next check
    to fail, so reaching it means the flagfile's alternative was replaced."""
    result = run_module("trainers.fit", "--flagfile=demo.flags", *args, "--max_length=4",
                        f"--output_dir={tmp_path / 'run'}")
    assert_one_line_error(result, "trainers.fit", message, code=cli.FLAG_EXIT)


def test_unwritable_output_dir_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_module("trainers.fit", *SYNTHETIC, f"--backbone_config={TINY_CONFIG}",
                        f"--output_dir={blocker / 'run'}")
    assert_one_line_error(result, "trainers.fit", "--output_dir=", "is a file, not a directory",
                          code=cli.DATA_EXIT)


def test_shards_of_another_max_length_name_the_file_and_both_lengths(tiny_tfrecords, tmp_path):
    """tiny_tfrecords are 24 tokens long and have no summary.json: the first record tells."""
    result = run_module("trainers.fit", *fit_args(tiny_tfrecords, tmp_path / "run", "--max_length=16")[1:])
    line = assert_one_line_error(result, "trainers.fit", "records are 24 tokens long", "--max_length=16",
                                 code=cli.DATA_EXIT)
    assert tiny_tfrecords in line and ".tfrecord.gz" in line


@pytest.mark.parametrize("extra, message", [
    ((), "--eval_tfrecords=.* is --train_tfrecords"),
    (("--eval_tfrecords={records}/*-00000-*",), "share 2 file"),
])
def test_eval_shards_that_are_training_shards_are_refused(tiny_tfrecords, tmp_path, extra, message):
    args = fit_args(tiny_tfrecords, tmp_path, *[e.format(records=tiny_tfrecords) for e in extra])
    if not extra:
        args = [a.replace("eval-*", "train-*") for a in args]
    else:  # eval-00000 and train-00000 both match; train-00000 is a training shard
        args = [a.replace(f"{tiny_tfrecords}/train-*", f"{tiny_tfrecords}/*") for a in args]
    with pytest.raises(flags.Error, match=message):
        fit.run_with_args(args)
    assert not (tmp_path / "flags.txt").exists(), "refused before anything is written"



@pytest.mark.parametrize("task, message", [
    ("--task=all", "--eval_fraction: the eval set holds 2 queries (27 pairs), too few for its NDCG to choose the "
                   "best model (at least 3); raise --eval_fraction"),
    ("--task=1", "--eval_fraction=0.2: the data holds 2 queries, too few to hold out 1 in 5"),
])
def test_an_eval_set_too_small_to_choose_a_model_is_refused_naming_eval_fraction(tmp_path, task, message):
    """9 generated queries with --eval_fraction=0.2 leave 2 eval queries (--task=all), or 2
    queries in all (task 1: one locale): the eval NDCG would pick the "best" model by chance, or
    the split fails; either way the run stops before training (evaluation.MIN_QUERIES)."""
    result = run_module("trainers.fit", *SYNTHETIC, "--synthetic_queries=9", task, "--eval_fraction=0.2",
                        f"--backbone_config={TINY_CONFIG}", f"--output_dir={tmp_path / 'run'}")
    assert_one_line_error(result, "trainers.fit", message, code=cli.FLAG_EXIT)
    assert not (tmp_path / "run" / "checkpoints").exists(), "nothing was trained"
