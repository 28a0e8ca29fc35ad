"""A tiny trainers.fit-style run (no training: weights drawn wide) and uncleaned rows as ESCI
parquet files, shared by the serving tests (SavedModel and TFLite exports)."""

import pathlib

import numpy as np
import pandas as pd

TINY = {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}
MAX_LENGTH = 64
LONG = ("Premium wireless headphones with deep bass. " * 1200)[:50_000]

# Uncleaned rows: markup and entities, emoji, control characters, repeated punctuation,
# full-width Japanese, Spanish, empty fields (None in the parquet, "" on the wire), 50,000 chars.
ROWS = [
    ("🎧🎧", "us", "Wireless Headphones 🎧 Over-Ear", "Sonix", "Black", "40h battery\nBluetooth 5.3", LONG),
    ("<b>headphones</b>", "us", "<b>Studio</b> Headphones &amp; Case", "Sonix", None,
     "<ul><li>Foldable</li><li>Noise&nbsp;cancelling!!!</li></ul>", "<p>Great &#x2764; sound</p>"),
    ("ワイヤレス　イヤホン", "jp", "完全ワイヤレスイヤホン　ＢＬＵＥＴＯＯＴＨ５．３", "ソニックス", "ホワイト",
     "長時間再生\n防水", "高音質。"),
    ("zapatillas niño", "es", "Zapatillas de running para niño", "Marca\x07", "azul", None, "Suela de goma."),
    ("red shoes", "us", "Running Shoe", None, None, None, None),
    ("★★★", "us", "", None, None, None, None),
]


def tiny_run(run_dir: pathlib.Path, template=None):
    """A trainers.fit-style run directory (best_model.keras + preprocessing.json) holding a tiny
    xlm_roberta CrossEncoder on the demo vocabulary, its weights drawn wide enough that scores
    differ from row to row (a parity check on near-equal scores would prove little)."""
    from esci_tf.preprocessing.template import TemplateSettings
    from esci_tf.models import build_cross_encoder
    from esci_tf.preprocessing import PairPreprocessor, load_tokenizer
    from esci_tf.preprocessing.frame_encoder import FrameEncoder
    from esci_tf.training import checkpointing

    preprocessor = PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", MAX_LENGTH)
    model = build_cross_encoder(
        "xlm_roberta", backbone_config={**TINY, "vocabulary_size": preprocessor.base_vocabulary_size,
                                        "max_sequence_length": 2 * MAX_LENGTH},
        tokenizer_vocabulary_size=preprocessor.base_vocabulary_size,
        separator_token_id=preprocessor.separator_token_id)
    generator = np.random.default_rng(0)
    for variable in model.weights:
        if len(variable.shape) >= 2:
            variable.assign(generator.normal(0.0, 0.3, variable.shape).astype(np.float32))
    run_dir.mkdir(parents=True)
    FrameEncoder(preprocessor, template or TemplateSettings()).save(str(run_dir))
    checkpointing.keep_if_best(model, str(run_dir), ndcg=0.5, step=1)
    return str(run_dir)


def write_parquet(directory: pathlib.Path):
    names = ("query", "product_locale", "product_title", "product_brand", "product_color",
             "product_bullet_point", "product_description")
    frame = pd.DataFrame([dict(zip(names, row)) for row in ROWS])
    frame["product_id"] = [f"P{i}" for i in range(len(frame))]
    examples = frame[["query", "product_id", "product_locale"]].assign(
        example_id=range(len(frame)), query_id=range(len(frame)), small_version=1, large_version=1, split="test")
    products = frame[["product_id", "product_locale", *names[2:]]]
    examples.to_parquet(directory / "examples.parquet", index=False)
    products.to_parquet(directory / "products.parquet", index=False)
    return directory / "examples.parquet", directory / "products.parquet"
