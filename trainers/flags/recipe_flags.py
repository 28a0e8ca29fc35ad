"""The flags of trainers.recipe: every trainers.fit flag (the settings of each fine-tune) plus one
per esci_tf.recipe.config.RecipeConfig setting, with its default."""

import dataclasses

from absl import flags

from esci_tf.recipe.config import RecipeConfig
from trainers.flags import fit_flags

FLAGS = flags.FLAGS

HELP = {
    "num_folds": "Query-grouped folds (balanced by rows and locale; translations stay with their query).",
    "train_folds": "Folds to train (empty: all), e.g. 0,3 for the paper's '2 of 7' bagging; the others only "
                   "train the fold models.",
    "fold_seed": "Seed of the fold assignment and of the ensemble's nested cross-validation.",
    "folds_from": "A trainers.recipe --output_dir R0: use its fold assignment (R0/folds/fold_assignment.csv) "
                  "instead of drawing one, so the two runs' out-of-fold scores can be ensembled: each query "
                  "keeps R0's fold (with --locales, a subset of R0's queries keeps theirs). Every query must be "
                  "in R0's assignment and --num_folds must be R0's.",
    "distill": "Self-distillation stage: retrain on hard_label_weight x label + the rest x out-of-fold "
               "probabilities.",
    "distill_on": "all: one fine-tune on every pair; folds: one per fold (gives out-of-fold scores).",
    "hard_label_weight": "Share of the (smoothed) hard label in the distillation targets (the paper: 0.7).",
    "pseudo_examples": "Unlabeled examples (official schema; esci_label absent or ignored) for pseudo labels.",
    "pseudo_products": "Products of --pseudo_examples.",
    "pseudo_threshold": "Pseudo pairs kept: largest class probability above this (soft labels).",
    "pseudo_on": "all: one fine-tune on training + pseudo pairs; folds: one per fold.",
    "members": "Ensemble members: cross_encoder (the last stage's models), bi_encoder (a fine-tuned "
               "sentence encoder, one per fold, bagged), bm25, zero_shot, dir:MODEL_DIR.",
    "member_runs": "Flagfiles of member runs (the paper's ensemble across separately trained models): each is "
                   "this command line plus the flagfile's flags (which win), trained into R/runs/<its base name> "
                   "with this run's folds and no pseudo labels; R/final is then the ensemble across this run and "
                   "them (trainers.ensemble's, with this run's bm25/zero_shot members), its report in "
                   "R/final/report.json.",
    "bi_encoder_epochs": "Passes over the query lists of each bi_encoder fold model.",
    "bi_encoder_learning_rate": "Peak AdamW learning rate of the bi_encoder fold models.",
    "bi_encoder_list_size": "Products per bi_encoder training list (longer lists are cut).",
    "bi_encoder_lists_per_batch": "Query lists per bi_encoder training batch.",
    "bi_encoder_loss": "The bi_encoder's loss over each query's list: pairwise_logistic (keras-rs) or cosent "
                       "(one log-sum-exp over the batch's wrongly ordered pairs).",
    "ensemble_folds": "Query parts of the nested cross-validation that chooses the ensemble's weights (and its "
                      "fallback to the best member) and estimates the ensemble against its best member.",
    "per_locale_weights": "Fit weights per locale (locales with 30+ queries).",
    "correlation_limit": "A member correlating this much with a stronger member gets weight 0.",
    "weight_step": "Grid step of the ensemble weights.",
    "min_list_size": "Queries with at least this many pairs count as long lists in the report.",
    "bootstrap_samples": "Bootstrap resamples of the report's intervals.",
}


def define_flags(flag_values=FLAGS):
    """The fit flags and the recipe flags, once per process."""
    fit_flags.define_flags(flag_values)
    if "num_folds" in flag_values:
        return
    for field in dataclasses.fields(RecipeConfig):
        if field.name in ("run", "output_dir"):
            continue
        default = field.default
        if isinstance(default, bool):
            flags.DEFINE_bool(field.name, default, HELP[field.name], flag_values=flag_values)
        elif isinstance(default, int):
            flags.DEFINE_integer(field.name, default, HELP[field.name], flag_values=flag_values)
        elif isinstance(default, float):
            flags.DEFINE_float(field.name, default, HELP[field.name], flag_values=flag_values)
        elif isinstance(default, tuple):
            flags.DEFINE_list(field.name, list(default), HELP[field.name], flag_values=flag_values)
        else:
            flags.DEFINE_string(field.name, default, HELP[field.name], flag_values=flag_values)


def recipe_config(flag_values=FLAGS) -> RecipeConfig:
    """The RecipeConfig the parsed flags describe (checked by RecipeConfig.validate)."""
    values = {f.name: flag_values[f.name].value for f in dataclasses.fields(RecipeConfig)
              if f.name not in ("run", "output_dir")}
    values["train_folds"] = tuple(int(f) for f in values["train_folds"])
    values["members"] = tuple(values["members"])
    values["member_runs"] = tuple(values["member_runs"])
    return RecipeConfig(run=fit_flags.run_config(flag_values), output_dir=flag_values.output_dir, **values)
