"""A recipe run's fold assignment: which fold each labeled query is in (R/folds/fold_assignment.csv).

trainers.recipe writes it in its folds stage (columns query_id, fold; one row per labeled query of
the run, written atomically). Another run given --folds_from=R0 reads R0's and keeps each query's
fold, so the two runs' out-of-fold scores come from models that never saw the query; an ensemble
of several runs needs that (esci_tf.recipe.pipeline, trainers.ensemble).

Two runs are aligned when every query they share is in the same fold; `check_aligned` names the
first query (smallest id) that is not.

--folds_from=R0 (`folds_from`): each row takes its query's fold in R0's assignment. The rule for
a query R0 lacks: it is an error naming the query (the run is not a subset of R0's queries, so
its out-of-fold scores could not be matched with R0's); so is a --num_folds other than R0's
(the largest fold in R0's file + 1), and a query group of this run (translations, repeated query
texts: esci_tf.recipe.targets.query_groups) that R0 split over two folds.

>>> import pandas as pd
>>> r1 = pd.Series([0, 1, 2], index=pd.Index([15, 17, 19], name="query_id"))
>>> r2 = pd.Series([1, 2], index=pd.Index([15, 17], name="query_id"))
>>> check_aligned({"R1": r1, "R2": r1.loc[[17, 19]]})
>>> check_aligned({"R1": r1, "R2": r2})
Traceback (most recent call last):
...
ValueError: runs R1 and R2 are not aligned: query_id 15 is in fold 0 of R1 and fold 1 of R2; give R2 --folds_from=R1
"""

import os

import numpy as np
import pandas as pd
import tensorflow as tf

from esci_tf import files
from esci_tf.errors import DataError
from esci_tf.training.config import ConfigError

FILE_NAME = "fold_assignment.csv"
STAGE_DIR = "folds"  # the recipe stage directory that holds it


def path(run_root: str) -> str:
    """Where the recipe run in `run_root` keeps its fold assignment."""
    return os.path.join(run_root, STAGE_DIR, FILE_NAME)


def write(run_root: str, query_ids, folds) -> str:
    """Record the fold of each query (one row per query; every row of a query must share one fold,
    else ValueError naming the query); returns the file's path."""
    frame = pd.DataFrame({"query_id": np.asarray(query_ids, np.int64), "fold": np.asarray(folds, np.int64)})
    frame = frame.drop_duplicates()
    split = frame["query_id"].duplicated(keep=False)
    if split.any():
        query = int(frame.loc[split, "query_id"].min())
        raise ValueError(f"query_id {query} is in folds {sorted(frame.loc[frame['query_id'] == query, 'fold'])}: "
                         "a query's rows must share one fold")
    target = path(run_root)
    with files.atomic_path(target) as temporary, tf.io.gfile.GFile(temporary, "w") as stream:
        frame.sort_values("query_id").to_csv(stream, index=False)
    return target


def read(run_root: str) -> pd.Series:
    """The fold (int) of each query of the run in `run_root`, indexed by query_id; DataError (one
    line naming the path) when the run has none or the file is not one."""
    target = path(run_root)
    if not tf.io.gfile.exists(target):
        raise DataError(f"no fold assignment: is {run_root} a trainers.recipe --output_dir whose folds stage "
                        "has run?", path=target)
    with tf.io.gfile.GFile(target) as stream:
        frame = pd.read_csv(stream)
    if list(frame.columns) != ["query_id", "fold"] or frame["query_id"].duplicated().any():
        raise DataError("expected columns query_id, fold with one row per query", path=target)
    try:
        return pd.Series(frame["fold"].to_numpy(np.int64), index=pd.Index(frame["query_id"].to_numpy(np.int64),
                                                                             name="query_id"), name="fold")
    except (TypeError, ValueError) as error:
        raise DataError(f"query_id and fold must be integers ({error})", path=target) from error


def check_aligned(assignments: dict) -> None:
    """ValueError naming the first pair of runs (in the given order) and the first query they put
    in different folds; {run name: Series from `read`}."""
    names = list(assignments)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a, b = assignments[first], assignments[second]
            shared = a.index.intersection(b.index)
            differs = shared[a.loc[shared].to_numpy() != b.loc[shared].to_numpy()]
            if len(differs):
                query = int(differs.min())
                raise ValueError(f"runs {first} and {second} are not aligned: query_id {query} is in fold "
                                 f"{int(a.loc[query])} of {first} and fold {int(b.loc[query])} of {second}; "
                                 f"give {second} --folds_from={first}")


def folds_from(run_root: str, frame: pd.DataFrame, num_folds: int) -> np.ndarray:
    """int32 fold of each row of `frame`: its query's fold in the run in `run_root` (--folds_from;
    the rules in the module docstring, each broken one a ConfigError naming the flag)."""
    from esci_tf.recipe.targets import query_groups

    assignment = read(run_root)
    flag = f"--folds_from={run_root}"
    query_ids = frame["query_id"].to_numpy(np.int64)
    missing = np.setdiff1d(query_ids, assignment.index.to_numpy())
    if len(missing):
        raise ConfigError(f"{flag}: query_id {int(missing[0])} of the training pairs is not in {path(run_root)} "
                          f"({len(missing)} queries are not); folds can only be shared over that run's queries")
    theirs = int(assignment.max()) + 1
    if theirs != num_folds:
        raise ConfigError(f"{flag} has {theirs} folds: give --num_folds={theirs} (got {num_folds})")
    folds = assignment.loc[query_ids].to_numpy(np.int32)
    groups = pd.Series(folds).groupby(query_groups(frame)).nunique()
    if (groups > 1).any():
        group = int(groups.index[(groups > 1).to_numpy()][0])
        raise ConfigError(f"{flag}: the queries of group {group} (translations or equal query texts, which share a "
                          f"fold here) are in different folds of {path(run_root)}")
    return folds
