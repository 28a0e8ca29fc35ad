"""The settings a run's results depend on, recorded in <output_dir>/run_settings.json.

They are RunConfig.result_settings() (every setting but the result-neutral ones, by their role:
esci_tf.settings), with the input files replaced by their content (run_data.data_identity: size
and SHA-256), so moving the files is fine and editing them is a change. A run records them when
it starts training; a resume (checkpoints present) with different ones stops with one line
listing each difference. A setting the record lacks (added to RunConfig after the run started)
is compared as its declared default: an old run resumes while the new setting keeps it.

>>> old = {"seed": 0, "learning_rate": 0.001, "examples": {"size": 300, "sha256": "ab" * 32}}
>>> differences(old, dict(old, seed=1, examples={"size": 150, "sha256": "cd" * 32}))
['--examples 300 bytes sha256 abababababab -> 150 bytes sha256 cdcdcdcdcdcd', '--seed 0 -> 1']
"""

import json
import os

from absl import logging

from esci_tf import files
from esci_tf.training.config import ConfigError, RunConfig, data_files, defaults

SETTINGS_FILE = "run_settings.json"


def result_settings(config: RunConfig, identity: dict) -> dict:
    """The settings that change `config`'s results, inputs by content, as JSON values."""
    inputs = data_files()
    values = {name: value for name, value in config.result_settings().items() if name not in inputs}
    values.update(identity)
    return _json(values)


def _json(values: dict) -> dict:
    return json.loads(json.dumps(values, default=files.json_default))


def _show(value) -> str:
    if isinstance(value, dict) and "sha256" in value:
        files_part = f"{value['files']} files, " if "files" in value else ""
        return f"{files_part}{value['size']} bytes sha256 {value['sha256'][:12]}"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return f"sha256 {value[:12]}"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


_UNSET = object()


def differences(recorded: dict, current: dict) -> list:
    """'--name old -> new' for every setting that differs, sorted by name."""
    changes = []
    for name in sorted(set(recorded) | set(current)):
        old, new = recorded.get(name, _UNSET), current.get(name, _UNSET)
        if old != new:
            changes.append(f"--{name} {'(not recorded)' if old is _UNSET else _show(old)} -> "
                           f"{'(not set)' if new is _UNSET else _show(new)}")
    return changes


def check_resume(output_dir: str, settings: dict) -> None:
    """ConfigError (one line: each difference, how to start fresh) when the run in output_dir
    was started with other result settings."""
    path = os.path.join(output_dir, SETTINGS_FILE)
    recorded = files.read_json(path, missing_ok=True)
    if recorded is None:
        logging.warning("%s not found: cannot check that the resumed run has its original settings", path)
        return
    # A setting added since the run was recorded counts as its declared default there.
    declared = _json(defaults())
    recorded = {**{name: declared[name] for name in settings if name in declared and name not in recorded},
                **recorded}
    changes = differences(recorded, settings)
    if changes:
        raise ConfigError(f"--output_dir={output_dir} holds a run started with other settings: "
                          f"{', '.join(changes)}; resume it with its own settings ({SETTINGS_FILE} there), "
                          f"or start fresh with another --output_dir (or delete {output_dir})")


def record(output_dir: str, settings: dict) -> None:
    """Write run_settings.json (atomically)."""
    files.write_json(os.path.join(output_dir, SETTINGS_FILE), settings)
