"""One shard = one job: its rows' keys in write order and where their text comes from; jobs run
in this process or in parallel worker processes, with the same bytes either way.

A job holds only its own shard's rows (ids, labels, folds, queries, and the product text, or the
byte spans of it in an esci_tf.data.product_store file) and writes them `ENCODE_BATCH` rows at a
time: raw fields -> FrameEncoder's FieldsPreprocessor -> tf.train.Example -> the GZIP shard
(esci_tf.records.writer.open_shard: a temporary name, renamed when complete), then reads the shard
back (esci_tf.records.shards.check_shard). Every pair is encoded on its own (the graph is per row,
padded to max_length), so which rows share a batch, and which process runs a shard, cannot
change a byte. `run_jobs` yields the results in job order; with workers > 1 the jobs go to a
pool of spawned processes (each rebuilds the encoder from FrameEncoder.to_config once), at
most two jobs per worker in flight, so memory is a few shards' keys, not a split.
"""

import dataclasses
import os

import numpy as np

from esci_tf.data.product_store import read_fields
from esci_tf.preprocessing.frame_encoder import ENCODE_BATCH
from esci_tf.records import schema

_ENCODER = None  # a worker process's FrameEncoder (set by _start_worker)


@dataclasses.dataclass
class ShardJob:
    """One shard's rows in write order (see the module docstring).

    columns: schema.METADATA_KEYS, "labels" [N, 4] and "query" (numpy arrays of N rows);
    text: the product text columns of the rows (frames in memory), or None when `store_path`
    and `spans` ([N, 2] byte ranges in a ProductStore file) give them.
    """

    path: str
    columns: dict
    text: dict | None = None
    store_path: str | None = None
    spans: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return len(self.columns["query_id"])

    def fields(self, start: int, stop: int) -> dict:
        """The raw fields (template_ops.RAW_FIELDS) of rows start:stop."""
        if self.text is not None:
            text = {name: values[start:stop] for name, values in self.text.items()}
        else:
            text = read_fields(self.store_path, self.spans[start:stop])
        return dict(text, query=self.columns["query"][start:stop], product_locale=self.columns["locale"][start:stop])


def write_shard(job: ShardJob, encoder, batch_rows: int = ENCODE_BATCH) -> np.ndarray:
    """Writes and checks one shard; returns the tokens truncation cut from each of its rows."""
    from esci_tf.records.shards import check_shard
    from esci_tf.records.writer import open_shard, serialize_example

    cut = [np.zeros(0, np.int32)]
    with open_shard(job.path) as writer:
        for start in range(0, job.num_rows, batch_rows):
            stop = min(start + batch_rows, job.num_rows)
            features, tokens_cut = encoder.fields_preprocessor.encode_in_batches(job.fields(start, stop), batch_rows)
            values = dict(features, **{key: job.columns[key][start:stop] for key in ("labels",) + schema.METADATA_KEYS})
            for i in range(stop - start):
                writer.write(serialize_example({key: values[key][i] for key in schema.ALL_KEYS}))
            cut.append(tokens_cut)
    count = check_shard(job.path, encoder.max_length)
    if count != job.num_rows:
        raise RuntimeError(f"{job.path}: wrote {job.num_rows} records but read back {count}")
    return np.concatenate(cut)


def _start_worker(encoder_config: dict, threads: int) -> None:
    global _ENCODER
    import tensorflow as tf

    from esci_tf.preprocessing.frame_encoder import FrameEncoder

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    _ENCODER = FrameEncoder.from_config(encoder_config)


def _run_in_worker(job: ShardJob) -> np.ndarray:
    return write_shard(job, _ENCODER)


def default_workers() -> int:
    """The machine's cores (those this process may run on)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


PAIRS_PER_WORKER = 20000  # a worker's start (TensorFlow import, tracing) costs about this many pairs' work


def auto_workers(pairs: int) -> int:
    """--workers=0: the machine's cores, but no more than one worker per PAIRS_PER_WORKER pairs
    (small builds stay in one process, where starting workers would cost more than it saves)."""
    return max(1, min(default_workers(), -(-pairs // PAIRS_PER_WORKER)))


def run_jobs(jobs, encoder, workers: int = 1):
    """Yields (job, tokens_cut) for every job of the iterable, in its order; `workers` > 1 runs
    them in that many spawned processes (never more than there are jobs to run)."""
    jobs = iter(jobs)
    if workers <= 1:
        for job in jobs:
            yield job, write_shard(job, encoder)
        return
    import collections
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pending = collections.deque()
    threads = max(1, default_workers() // workers)
    context = multiprocessing.get_context("spawn")  # TensorFlow's threads do not survive a fork
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(encoder.to_config(), threads)) as pool:
        try:
            for job in jobs:
                pending.append((job, pool.submit(_run_in_worker, job)))
                if len(pending) >= 2 * workers:
                    job, future = pending.popleft()
                    yield job, future.result()
            while pending:
                job, future = pending.popleft()
                yield job, future.result()
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise
