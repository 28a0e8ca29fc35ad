"""esci_tf.data.validation's row checks of silently wrong inputs: each raises naming the rows, or
with on_bad_rows="skip" drops them and counts them per reason."""

import pandas as pd
import pytest

from esci_tf.errors import DataError
from esci_tf.data.reader import load_esci
from test_data_reader import examples_frame, write


def with_rows(*rows):
    """examples_frame plus copies of its rows (index, changes), each with a new example_id."""
    examples = examples_frame()
    extra = []
    for index, changes in rows:
        row = examples.loc[index].copy()
        row["example_id"] = 100 + len(extra)
        for key, value in changes.items():
            row[key] = value
        extra.append(row)
    return pd.concat([examples, pd.DataFrame(extra)], ignore_index=True)


def raise_then_skip(tmp_path, examples, reason, rows):
    """Raises naming the first row and the reason; skip drops `rows` and counts them under reason."""
    e, p = write(tmp_path, examples=examples)
    with pytest.raises(DataError, match=rf"examples\.parquet, row {rows[0]}: .*\({reason}, {len(rows)} rows\)"):
        load_esci(e, p, task="all")
    frame, report = load_esci(e, p, task="all", on_bad_rows="skip")
    dropped = examples.loc[rows, "example_id"].tolist()
    assert report.counts == {reason: len(rows)} and report.ids[reason] == dropped
    assert not set(dropped) & set(frame["example_id"]) and len(frame) == len(examples) - len(rows)
    return frame


def test_a_query_that_cleaning_empties_is_an_empty_query(tmp_path):
    examples = examples_frame()
    examples.loc[2, "query"] = "😀🎉 ★"
    raise_then_skip(tmp_path, examples, "empty_query", [2])


def test_prediction_input_keeps_a_query_that_cleaning_empties(tmp_path):
    examples = examples_frame()
    examples.loc[2, "query"] = "😀🎉 ★"
    e, p = write(tmp_path, examples=examples)
    frame, report = load_esci(e, p, task="all", require_labels=False)
    assert "😀🎉 ★" in set(frame["query"]) and not report.counts


def test_one_query_id_with_two_query_strings(tmp_path):
    examples = examples_frame()
    examples.loc[1, "query"] = "blue shoes"  # query_id 1 is "red shoes" in row 0
    raise_then_skip(tmp_path, examples, "query_id_conflict", [0, 1])


def test_the_same_pair_with_different_labels_drops_every_copy(tmp_path):
    examples = with_rows((0, {"esci_label": "I"}))
    raise_then_skip(tmp_path, examples, "conflicting_labels", [0, 6])


def test_the_same_pair_twice_with_one_label_keeps_the_first(tmp_path):
    examples = with_rows((4, {}))
    frame = raise_then_skip(tmp_path, examples, "duplicate_pair", [6])
    assert 14 in set(frame["example_id"]), "the first copy stays"


def test_prediction_input_keeps_duplicate_pairs(tmp_path):
    """Unlabeled input is scored row by row: a repeated pair is scored twice, not refused."""
    examples = with_rows((0, {"esci_label": "I"})).drop(columns="esci_label")
    e, p = write(tmp_path, examples=examples)
    frame, report = load_esci(e, p, task="all", require_labels=False)
    assert len(frame) == len(examples) and not report.counts


def test_no_pairs_is_an_error_naming_the_file_and_why(tmp_path):
    e, p = write(tmp_path, examples=examples_frame().iloc[:0])
    with pytest.raises(DataError, match=r"examples\.parquet: the file has no rows"):
        load_esci(e, p)
    only_task_2 = examples_frame()
    only_task_2["small_version"] = 0
    e, p = write(tmp_path, examples=only_task_2)
    with pytest.raises(DataError, match="no pairs of task 1 among its 6 rows"):
        load_esci(e, p, task="1")
    all_bad = examples_frame()
    all_bad["esci_label"] = "?"
    e, p = write(tmp_path, examples=all_bad)
    with pytest.raises(DataError, match=r"no pairs of task all left: dropped 6 rows \(unknown_label: 6\)"):
        load_esci(e, p, task="all", on_bad_rows="skip")
