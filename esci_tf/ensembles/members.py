"""The members of an ensemble across recipe runs, with their out-of-fold scores on the labeled pairs.

Each run R (esci_tf.recipe.runs.load_run) gives `<name>.cross_encoder`: its last training stage's
models, bagged, scored by that stage's out-of-fold probabilities (or the latest earlier stage's
that has them, as in the recipe's own ensemble: esci_tf.recipe.members.cross_encoder_scores), and
`<name>.bi_encoder` when it trained one (its fold models, bagged; their out-of-fold scores). A
member has NaN on the pairs its run did not score out of fold (another locale, a fold it did not
train). BM25 (fitted on the products table) and the zero-shot cosine (the first run's backbone
and checkpoint) score every pair and train on none.
"""

import os

import numpy as np

from esci_tf import files
from esci_tf.recipe.members import bi_encoder_scores, cross_encoder_scores


def run_names(roots) -> list:
    """A short distinct name per run directory: its base name (with -2, -3... when repeated)."""
    names = []
    for root in roots:
        base = os.path.basename(str(root).rstrip("/")) or "run"
        name, index = base, 2
        while name in names:
            name, index = f"{base}-{index}", index + 1
        names.append(name)
    return names


def run_members(name: str, run, frame) -> tuple:
    """({member: scores [N]}, {member: ("stage", key)}, {key: (Stage, ModelSet)}) of one run."""
    scores, rankers, stages = {}, {}, {}
    for stage_name, stage in run.stages.items():
        stages[f"{name}/{stage_name}"] = stage
    scores[f"{name}.cross_encoder"], _ = cross_encoder_scores(frame, run.cross_encoder_stages, run.last_stage)
    rankers[f"{name}.cross_encoder"] = ("stage", f"{name}/{run.last_stage}")
    if "bi_encoder" in run.stages:
        scores[f"{name}.bi_encoder"] = bi_encoder_scores(frame, run.stages["bi_encoder"][1])
        rankers[f"{name}.bi_encoder"] = ("stage", f"{name}/bi_encoder")
    return scores, rankers, stages


def builtin_member(member: str, frame, products_table, first_run) -> tuple:
    """(scores [N], ranker) of bm25 or zero_shot."""
    if member == "bm25":
        from esci_tf.rankers.bm25 import BM25Ranker

        ranker = BM25Ranker.fit_catalog(products_table[["product_id", "product_locale", "product_title"]])
    else:
        from esci_tf.rankers.zero_shot import ZeroShotRanker
        from esci_tf.training.run_settings import SETTINGS_FILE

        stage, model_set = first_run.stages["folds"]
        settings = files.read_json(os.path.join(stage.path(model_set.directories[0]), SETTINGS_FILE))
        ranker = ZeroShotRanker(settings["backbone"], settings["checkpoint"])
    return np.asarray(ranker.scores(frame), np.float64), ranker
