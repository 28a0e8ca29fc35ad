"""FrameEncoder: a merged ESCI frame -> model inputs, the one path every caller takes.

Its FieldsPreprocessor (cleaning and the template as TF ops, then the PairPreprocessor's
tokenization and packing) turns each row's raw fields into model inputs. TFRecord building,
trainers.predict, the recipe and the benchmarks all encode through it, and a trained model
directory keeps it as preprocessing.json (the PairPreprocessor config with its vocabulary
inlined, and the template settings), which trainers.predict and trainers.export load back.
"""

import os

from esci_tf import files

from esci_tf.preprocessing.template import TemplateSettings, check_frame, frame_fields

PREPROCESSING_FILE = "preprocessing.json"
ENCODE_BATCH = 512


class FrameEncoder:
    """Formats and tokenizes the rows of a merged ESCI frame (see esci_tf.data.reader.load_esci)."""

    def __init__(self, preprocessor, template: TemplateSettings | None = None):
        from esci_tf.preprocessing.fields_preprocessor import FieldsPreprocessor

        self.preprocessor = preprocessor
        self.template = template or TemplateSettings()
        # Raw fields -> token ids: cleaning, template and tokenization in one layer.
        self.fields_preprocessor = FieldsPreprocessor(preprocessor, self.template)

    @property
    def max_length(self) -> int:
        return self.preprocessor.max_length

    def format(self, frame):
        """(queries, product_texts) of every row."""
        return self.template.format(frame)

    def encode(self, frame, batch_size: int = ENCODE_BATCH, progress=None):
        """(features, tokens_cut): int32 numpy arrays [N, max_length] per model input, and the
        tokens truncation cut from each pair [N]; `progress` is advanced per batch. The rows go
        through the FieldsPreprocessor, the model's own preprocessing."""
        check_frame(frame)
        return self.fields_preprocessor.encode_in_batches(frame_fields(frame), batch_size, progress)

    def features(self, frame, batch_size: int = ENCODE_BATCH) -> dict:
        """Only the model inputs of `encode`."""
        return self.encode(frame, batch_size)[0]

    # -- preprocessing.json
    def to_config(self) -> dict:
        """The JSON-able form (preprocessing.json's content; what a worker process rebuilds it from)."""
        return {"preprocessor": self.preprocessor.get_config(), "template": self.template.to_dict()}

    @classmethod
    def from_config(cls, config: dict) -> "FrameEncoder":
        from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor

        return cls(PairPreprocessor.from_config(config["preprocessor"]), TemplateSettings.from_dict(config["template"]))

    def save(self, directory: str) -> str:
        """Write <directory>/preprocessing.json; returns its path."""
        path = os.path.join(directory, PREPROCESSING_FILE)
        files.write_json(path, self.to_config(), indent=None)
        return path

    @classmethod
    def load(cls, directory: str) -> "FrameEncoder":
        """The encoder saved by `save` in a trained model directory."""
        path = os.path.join(directory, PREPROCESSING_FILE)
        saved = files.read_json(path, missing_ok=True)
        if saved is None:
            raise FileNotFoundError(f"{path} not found: --model_dir must be the --output_dir of a "
                                    "trainers.fit run")
        return cls.from_config(saved)

