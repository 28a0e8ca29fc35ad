"""The real ESCI sample the benchmarks read (../shared/data/esci_sample), its formatted pairs,
where results go, and the flags every benchmark takes."""

import dataclasses
import pathlib
import sys
from typing import Optional

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data" / "esci_sample"
DEFAULT_RESULTS_DIR = REPO / "results"


@dataclasses.dataclass
class SamplePairs:
    """Formatted (query, product text) pairs of the sample, with labels and query ids."""

    frame: object  # the merged pandas frame (esci_tf.data.reader.load_esci)
    queries: list
    products: list
    targets: np.ndarray  # [N, 4] float32 one-hot

    def __len__(self):
        return len(self.queries)


def sample_paths(data_dir) -> tuple:
    """(examples.parquet, products.parquet) of the sample dir; exits naming the dir if absent."""
    data_dir = pathlib.Path(data_dir)
    examples, products = data_dir / "examples.parquet", data_dir / "products.parquet"
    for path in (examples, products):
        if not path.exists():
            sys.exit(f"bench: ESCI sample file {path} not found (pass --data_dir, the directory holding "
                     "examples.parquet and products.parquet)")
    return examples, products


def load_sample_pairs(data_dir, max_pairs: Optional[int] = None) -> SamplePairs:
    """The sample's pairs, formatted by the paper template (esci_tf.preprocessing.template.TemplateSettings
    defaults, what FrameEncoder formats with), in file order; the first `max_pairs` only when given."""
    from esci_tf.data.reader import load_esci
    from esci_tf.preprocessing.template import TemplateSettings
    from esci_tf.labels import one_hot

    examples, products = sample_paths(data_dir)
    frame, _ = load_esci(examples, products, task="all")
    if max_pairs is not None:
        if max_pairs < 1:
            raise ValueError(f"--max_pairs must be >= 1, got {max_pairs}")
        frame = frame.iloc[:max_pairs].reset_index(drop=True)
    queries, product_texts = TemplateSettings().format(frame)
    return SamplePairs(frame, list(queries), list(product_texts), one_hot(frame["label"].to_numpy()))


def define_common_flags(flags, default_rounds: int = 5):
    """Flags every benchmark takes."""
    flags.DEFINE_integer("rounds", default_rounds, "Timed rounds; each runs every contender once, alternating.")
    flags.DEFINE_string("data_dir", str(DEFAULT_DATA_DIR), "Directory of the ESCI sample's parquet files.")
    flags.DEFINE_string("results_dir", str(DEFAULT_RESULTS_DIR), "Where <bench>.json is written.")
    flags.DEFINE_integer("max_pairs", None, "Use only the sample's first N pairs (quick smoke runs).")
    flags.DEFINE_integer("max_length", 128, "Tokens per packed (query, product) pair.")
    flags.DEFINE_integer("peak_size", 2048, "Matrix size of the fp32/bf16 matmul peak measurement (0: skip).")
