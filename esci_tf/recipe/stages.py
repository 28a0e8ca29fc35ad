"""Stage directories of the recipe: skipped when done with the same settings, rerun otherwise.

Each stage writes into R/<stage>/. Its `stage.json` records the settings the stage's outputs
depend on, among them the fingerprints of the stages it reads; it is written last (atomically),
so a stage killed half-way has no stage.json and runs again: with the same settings (its
`started.json`) its fine-tunes resume from their own checkpoints, with other settings the
half-done directory is removed first. A stage whose recorded settings differ from the current ones is removed and
rerun, with a log line naming the settings that changed; since a rerun stage gets a new
fingerprint, every stage after it sees a changed upstream setting and reruns too.

>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> stage = Stage(root, "folds", {"num_folds": 3})
>>> stage.done(), stage.changed_settings()
(False, [])
>>> stage.finish({"oof": "oof.csv"})
>>> Stage(root, "folds", {"num_folds": 3}).done(), Stage(root, "folds", {"num_folds": 5}).changed_settings()
(True, ['num_folds'])
"""

import hashlib
import json
import os
import time

import tensorflow as tf
from absl import logging

from esci_tf import files

STAGE_FILE = "stage.json"
STARTED_FILE = "started.json"


def fingerprint(value) -> str:
    """A short stable hash of a JSON-able value."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Stage:
    """R/<name>/ with the settings its outputs depend on."""

    def __init__(self, root: str, name: str, settings: dict):
        self.name = name
        self.directory = os.path.join(root, name)
        self.settings = json.loads(json.dumps(settings, default=str))  # as stage.json stores them
        self._saved = files.read_json(os.path.join(self.directory, STAGE_FILE), missing_ok=True)

    @classmethod
    def finished(cls, root: str, name: str) -> "Stage | None":
        """Stage `name` of the run in `root` with the settings it finished with; None when it has not."""
        saved = files.read_json(os.path.join(root, name, STAGE_FILE), missing_ok=True)
        return None if saved is None else cls(root, name, saved["settings"])

    def path(self, *names: str) -> str:
        return os.path.join(self.directory, *names)

    def changed_settings(self) -> list:
        """Names of the settings that differ from the finished run's (empty when none ran)."""
        if self._saved is None:
            return []
        before, now = self._saved["settings"], self.settings
        return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))

    def done(self) -> bool:
        """Finished with exactly these settings."""
        return self._saved is not None and not self.changed_settings()

    @property
    def outputs(self) -> dict:
        return dict(self._saved["outputs"]) if self._saved else {}

    @property
    def fingerprint(self) -> str:
        """Identifies this stage's finished outputs (what later stages record as a setting)."""
        return fingerprint({"settings": self.settings, "outputs": self.outputs})

    def prepare(self) -> bool:
        """True when the stage must run: removes a finished run made with other settings (logging
        which settings changed) and creates the directory; False when it is done already."""
        if self.done():
            logging.info("recipe stage %s: done with the same settings, skipped", self.name)
            return False
        changed = self.changed_settings()
        started = files.read_json(self.path(STARTED_FILE), missing_ok=True)
        if changed:
            logging.warning("recipe stage %s: settings changed (%s); rerunning it and the stages after it",
                            self.name, ", ".join(changed))
        elif started is not None and started["settings"] != self.settings:
            logging.warning("recipe stage %s: an unfinished run with other settings is removed", self.name)
            changed = ["unfinished run"]
        elif started is not None:
            logging.info("recipe stage %s: resuming an unfinished run", self.name)
        if changed and tf.io.gfile.exists(self.directory):
            tf.io.gfile.rmtree(self.directory)
        self._saved = None
        files.write_json(self.path(STARTED_FILE), {"settings": self.settings})
        return True

    def finish(self, outputs: dict) -> None:
        """Record the stage as done (stage.json, written last)."""
        record = {"settings": self.settings, "outputs": outputs, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
        files.write_json(self.path(STAGE_FILE), record)
        self._saved = record
