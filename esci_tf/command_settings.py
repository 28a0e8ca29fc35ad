"""The settings of the commands that have no config class of their own: trainers.predict
(PredictSettings) and tfrecords.build (BuildSettings), declared as esci_tf.settings describes.

A setting they share with trainers.fit or trainers.recipe is borrowed from its declaration
there (same help, choices and role); where the command's default differs for the same
meaning, the borrowed declaration states it (--num_shards 8 and --num_folds 5 for a build).
A different meaning gets a different name: a build's seed only seeds the fold assignment, so
it is the recipe's --fold_seed (--seed stays an alias: trainers/flags/build_flags.py). No
TensorFlow or pandas import here.
"""

import dataclasses
from typing import Optional

from esci_tf.choices import BACKBONE_NAMES, PREDICT_RUNTIMES, SPLITS
from esci_tf.recipe.config import RecipeConfig
from esci_tf.settings import INPUT, LOCAL, NEUTRAL, borrowed, setting
from esci_tf.training.config import DataConfig, TrainingConfig

DEFAULT_TOKENIZER = "xlm_roberta"  # no path: the embedded demo SentencePiece vocabulary


@dataclasses.dataclass
class PredictSettings:
    """trainers.predict: score ESCI pairs with a ranker directory."""

    model_dir: Optional[str] = setting(None, "A ranker directory: the --output_dir of a trainers.fit run (holds "
                                       "best_model.keras and preprocessing.json) or a trainers.recipe R/final.",
                                       role=INPUT, required=True)
    examples: Optional[str] = borrowed(DataConfig, "examples", required=True)
    products: Optional[str] = borrowed(DataConfig, "products", required=True)
    output: Optional[str] = setting(None, "Predictions CSV to write.", role=LOCAL, required=True)
    submission: bool = setting(
        False, "Write a submission file instead of scores: the task-1 ranking (query_id, product_id; best first "
        "within each query); with --task=2 the task-2 file (example_id, esci_label: exact/substitute/complement/"
        "irrelevant, the KDD Cup 2022's values; the dataset writes E/S/C/I); with --task=3 the task-3 file "
        "(example_id, substitute_label: substitute/no_substitute). Tasks 2 and 3 decide from the class "
        "probabilities by the model directory's decisions.json, else argmax.", role=NEUTRAL)
    task: str = borrowed(DataConfig, "task")
    split: Optional[str] = setting(None, "Score only this split's rows.", choices=SPLITS)
    locales: tuple = borrowed(DataConfig, "locales")
    on_bad_rows: str = borrowed(DataConfig, "on_bad_rows")
    batch_size: int = setting(128, "Pairs per model call.", bounds=(1, None))
    chunk_size: int = setting(8192, "Pairs read, scored and appended to --output per step: memory is bounded by it, "
                              "and a killed run continues after its last complete chunk.", bounds=(1, None))
    runtime: str = setting(
        "keras", "What scores the pairs: keras (the model in --model_dir), or the TFLite models trainers.export "
        "--tflite wrote (LiteRT with XNNPACK, one thread per core): tflite (float32) or tflite_int8 (dynamic-range "
        "int8, faster, scores within the tolerance its tests state); then --model_dir is that export's version "
        "directory (<export_dir>/<version>) and the batch is the export's (--tflite_batch_size), not --batch_size.",
        choices=PREDICT_RUNTIMES)
    # Apache Beam (issue 27; tfrecords.build borrows both): arguments that are no flag of the command are
    # Beam's pipeline options (esci_tf.beam_options).
    runner: Optional[str] = setting(
        None, "Run on Apache Beam with this runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner; `pip "
        "install .[beam]`); arguments that are no flag of this program are Beam's pipeline options (--project=..., "
        "--direct_num_workers=...). tfrecords.build writes the same shards and summary as its local builder; "
        "trainers.predict scores with the exported SavedModel in --model_dir (trainers.export's --export_dir or one "
        "of its versions) and writes the predictions or the task-1 submission (--chunk_size and resuming are the "
        "local run's). Unset: the local run.", role=LOCAL)
    dry_run: bool = setting(False, "With --runner: print the pipeline options and the job graph; submit nothing.",
                            role=LOCAL)


@dataclasses.dataclass
class BuildSettings:
    """tfrecords.build: ESCI pairs tokenized into TFRecord shards with a summary."""

    examples: Optional[str] = borrowed(DataConfig, "examples", required=True)
    products: Optional[str] = borrowed(DataConfig, "products", required=True)
    sources: Optional[str] = setting(None, "Optional query sources file (query_id, source).", role=INPUT)
    output_dir: Optional[str] = setting(None, "Directory for the shards and summary.json.", role=LOCAL, required=True)
    tokenizer: str = setting(
        DEFAULT_TOKENIZER, f"BACKBONE[:PATH]: backbone in {'|'.join(BACKBONE_NAMES)}; PATH a Hugging Face or "
        "keras-hub preset directory (local or gs://) or a keras-hub preset name. Plain xlm_roberta uses the embedded "
        "demo SentencePiece vocabulary.")
    max_length: int = borrowed(DataConfig, "max_length")
    task: str = borrowed(DataConfig, "task")
    num_folds: int = borrowed(RecipeConfig, "num_folds", default=5)
    num_shards: int = borrowed(DataConfig, "num_shards", default=8)
    entity_markers: bool = borrowed(DataConfig, "entity_markers")
    field_style: str = borrowed(DataConfig, "field_style")
    prompt_tokens: int = borrowed(DataConfig, "prompt_tokens")
    on_bad_rows: str = borrowed(DataConfig, "on_bad_rows")
    label_smoothing: float = borrowed(TrainingConfig, "label_smoothing")
    fold_seed: int = borrowed(RecipeConfig, "fold_seed")
    locales: tuple = borrowed(DataConfig, "locales")
    workers: int = setting(0, "Processes that encode and write shards in parallel; 0: the machine's cores, at most "
                           "one per 20,000 pairs. The shards are the same bytes for any number.", role=NEUTRAL)
    runner: Optional[str] = borrowed(PredictSettings, "runner")
    dry_run: bool = borrowed(PredictSettings, "dry_run")
