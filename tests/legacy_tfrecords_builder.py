"""The single-process, in-memory TFRecord build as tfrecords.build did it before streaming
(commit 2542c37): the whole split read, merged, encoded in file order and written at once.
Kept only as the reference the streaming, parallel builder must match byte for byte
(tests/test_tfrecords_build_workers.py)."""

import os

import numpy as np

from esci_tf.data.reader import load_esci, read_table
from esci_tf.preprocessing.template import TemplateSettings
from esci_tf.preprocessing.frame_encoder import FrameEncoder
from esci_tf.records import summary as summary_lib
from esci_tf.records import writer
from esci_tf.records.builder import TEST_FOLD, remove_previous_build, shards_for, targets_of
from esci_tf.records.shards import check_shard


def legacy_build(examples, products, output_dir, preprocessor, tokenizer, task="1", num_folds=5, num_shards=8,
                 entity_markers=False, field_style="text", prompt_tokens=0, on_bad_rows="raise",
                 label_smoothing=0.0, seed=0, sources=None) -> dict:
    from esci_tf.data.splits import assign_folds

    products_table = read_table(products)
    merged, report = load_esci(examples, products, sources, task=task, on_bad_rows=on_bad_rows,
                               products_table=products_table)
    template = TemplateSettings.for_catalog(products_table, field_style, prompt_tokens, entity_markers)
    frames = {split: merged[merged["split"] == split].reset_index(drop=True)
              for split in sorted(merged["split"].unique(), key=lambda s: (s != "train", s))}
    encoder = FrameEncoder(preprocessor, template)
    os.makedirs(output_dir, exist_ok=True)
    remove_previous_build(output_dir)
    split_stats = {}
    for split, frame in frames.items():
        features, tokens_cut = encoder.encode(frame)
        folds = (np.asarray(assign_folds(frame, num_folds, seed), np.int64) if split == "train"
                 else np.full(len(frame), TEST_FOLD, np.int64))
        columns = dict(features, labels=targets_of(frame, label_smoothing),
                       query_id=frame["query_id"].to_numpy(np.int64), example_id=frame["example_id"].to_numpy(np.int64),
                       fold=folds, product_id=frame["product_id"].to_numpy(object),
                       locale=frame["product_locale"].to_numpy(object))
        paths = writer.write_split(output_dir, split, columns, shards_for(split, frame, num_shards))
        counts = {path: check_shard(path, encoder.max_length) for path in paths}
        split_stats[split] = summary_lib.split_summary(frame, tokens_cut, counts)
    settings = dict(examples=os.fspath(examples), products=os.fspath(products),
                    sources=None if sources is None else os.fspath(sources), task=str(task),
                    tokenizer=tokenizer, on_bad_rows=on_bad_rows)
    settings.update(
        backbone=preprocessor.backbone, max_length=encoder.max_length,
        vocabulary_size=preprocessor.vocabulary_size, base_vocabulary_size=preprocessor.base_vocabulary_size,
        num_folds=num_folds, seed=seed, num_shards=num_shards, label_smoothing=label_smoothing,
        field_style=template.field_style, prompt_tokens=template.prompt_tokens,
        entity_markers=template.entity_markers)
    summary = {"settings": settings, "total": summary_lib.overall_summary(frames), "splits": split_stats,
               "dropped": report.to_dict()}
    summary_lib.write_summary(summary, output_dir)
    return summary
