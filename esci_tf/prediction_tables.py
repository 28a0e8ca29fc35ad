"""The tables trainers.predict writes, on one machine or on Beam (esci_tf.serving.beam_predict):
the per-pair predictions and the task-1 ranking submission."""

import numpy as np
import pandas as pd

from esci_tf.labels import PROB_COLUMNS

OUTPUT_COLUMNS = ("query_id", "product_id", "product_locale", "score") + PROB_COLUMNS
SUBMISSION_COLUMNS = ("query_id", "product_id")


def predictions_table(frame: pd.DataFrame, scores: np.ndarray, probs: np.ndarray | None) -> pd.DataFrame:
    """The per-pair output table (OUTPUT_COLUMNS), in the frame's order."""
    table = frame[["query_id", "product_id", "product_locale"]].reset_index(drop=True).copy()
    table["score"] = scores
    for i, column in enumerate(PROB_COLUMNS):
        table[column] = probs[:, i] if probs is not None else np.nan
    return table


def submission_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """query_id, product_id ranked by score within each query (queries in first-seen order)."""
    table = predictions.reset_index(drop=True)
    query_order = pd.Series(pd.factorize(table["query_id"])[0], index=table.index)
    ranked = table.assign(_query=query_order, _row=np.arange(len(table)))
    ranked = ranked.sort_values(["_query", "score", "_row"], ascending=[True, False, True], kind="stable")
    return ranked[list(SUBMISSION_COLUMNS)].reset_index(drop=True)
