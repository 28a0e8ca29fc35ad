"""Stage directories of the recipe: skipped when done with the same settings, rerun otherwise.

Each stage writes into R/<stage>/. Its `stage.json` records the settings the stage's outputs
depend on, among them the fingerprints of the stages it reads; it is written last (atomically),
so a stage killed half-way has no stage.json and runs again: with the same settings (its
`started.json`) its fine-tunes resume from their own checkpoints, with other settings the
half-done directory is removed first. A stage whose recorded settings differ from the current ones is removed and
rerun, with a log line naming every setting that changed with its old and new value (nested
settings key by key: the fine-tunes' `run` settings by their trainers.fit flag names; settings
that are fingerprints of contents say what they stand for instead of two hashes); since a rerun
stage gets a new fingerprint, every stage after it sees a changed upstream setting and reruns too.

>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> stage = Stage(root, "folds", {"num_folds": 3})
>>> stage.done(), stage.changed_settings()
(False, [])
>>> stage.finish({"oof": "oof.csv"})
>>> Stage(root, "folds", {"num_folds": 3}).done(), Stage(root, "folds", {"num_folds": 5}).changed_settings()
(True, ['num_folds'])
>>> Stage(root, "folds", {"num_folds": 3, "run": {"learning_rate": 0.001}}).describe_changes()
'learning_rate unset -> 0.001'
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
FLAG_GROUPS = ("run",)  # nested settings whose keys are flag names: named by the key alone
# Settings whose values are fingerprints of contents (by dotted name): what a change means,
# instead of two hashes.
FINGERPRINTED = {"data": "other labeled pairs", "unlabeled": "other unlabeled pairs",
                 "augmentation": "other translations", "upstream": "an earlier stage reran",
                 "folds_from.assignment": "another fold assignment in that run"}
WHOLE = ("folds_from.assignment",)  # one fingerprint each ({size, sha256}: esci_tf.files): compared whole
_MISSING = object()


def differences(before: dict, now: dict, path: tuple = ()) -> list:
    """(path, old, new) of every setting that differs, nested dicts compared key by key; a
    setting one side lacks is _MISSING there."""
    found = []
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key, _MISSING), now.get(key, _MISSING)
        if old == new:
            continue
        if ".".join((*path, key)) in WHOLE:
            found.append(((*path, key), old, new))
        elif isinstance(old, dict) and isinstance(new, dict) or \
                (isinstance(old, dict) or isinstance(new, dict)) and _MISSING in (old, new):
            found += differences({} if old is _MISSING else old, {} if new is _MISSING else new, (*path, key))
        else:
            found.append(((*path, key), old, new))
    return found


def _name(path: tuple) -> str:
    return ".".join(part for part in path if part not in FLAG_GROUPS) or ".".join(path)


def _shown(value) -> str:
    text = "unset" if value is _MISSING or value is None else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def describe(path: tuple, old, new) -> str:
    """One changed setting: `name old -> new`, or `name (what it means)` for a fingerprint."""
    meaning = next((FINGERPRINTED[".".join(path[:n])] for n in range(1, len(path) + 1)
                    if ".".join(path[:n]) in FINGERPRINTED), None)
    if meaning is not None:
        return f"{_name(path)} ({meaning})"
    return f"{_name(path)} {_shown(old)} -> {_shown(new)}"


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

    def _differences(self) -> list:
        return [] if self._saved is None else differences(self._saved["settings"], self.settings)

    def changed_settings(self) -> list:
        """Names of the settings that differ from the finished run's (empty when none ran)."""
        return sorted({_name(path) for path, _, _ in self._differences()})

    def describe_changes(self) -> str:
        """Every changed setting with its old and new value (see the module docstring)."""
        return "; ".join(describe(*difference) for difference in self._differences())

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
                            self.name, self.describe_changes())
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
