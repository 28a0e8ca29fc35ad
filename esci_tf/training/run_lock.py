"""One live run per output directory: <output_dir>/run.lock.

Local directories: the lock is an fcntl.flock on run.lock, held for the whole run; the kernel
drops it when the process ends, however it ends (SIGKILL included), so a lock left by a killed
run is never mistaken for a live one: the next run takes it over. The file says who holds it
(pid, host, start time) for the error a second run gets.

gs:// and other remote directories have no file locks: run.lock is written with the same
fields, a second run refuses while it names a live process (same host: the pid is alive; another
host: always, since liveness cannot be checked from here; delete run.lock when that run is
known dead), and the run removes it when it ends. Two runs started within the same moment
can both pass the check there (the write is not an atomic create).

With several workers (TF_CONFIG, TPU pods) only the chief takes the lock; the workers write
nothing the chief does not.
"""

import json
import os
import socket
import time

import tensorflow as tf
from absl import logging

from esci_tf import files
from esci_tf.training.config import ConfigError

LOCK_FILE = "run.lock"


def is_chief() -> bool:
    """True unless TF_CONFIG or TPU_WORKER_ID name another worker than the chief (worker 0)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    if task:
        has_chief = "chief" in (config.get("cluster") or {})
        if task.get("type") == "chief" or (not has_chief and task.get("type") == "worker" and task.get("index", 0) == 0):
            return True
        return False
    return os.environ.get("TPU_WORKER_ID", "0") == "0"


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _busy(output_dir: str, owner: dict) -> ConfigError:
    who = f"pid {owner.get('pid')} on host {owner.get('host')}, started {owner.get('started')}"
    return ConfigError(f"--output_dir={output_dir} is in use by another run ({who}); wait for it to "
                       "end, or use another --output_dir")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """`with RunLock(output_dir):` holds the output directory's lock, or raises ConfigError
    naming the run that holds it."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.path = files.join(output_dir, LOCK_FILE)
        self._stream = None
        self._remote = False

    def __enter__(self):
        if not is_chief():
            return self
        tf.io.gfile.makedirs(self.output_dir)
        if files.is_remote(self.output_dir):
            self._acquire_remote()
        else:
            self._acquire_local()
        return self

    def _acquire_local(self):
        import fcntl

        stream = open(self.path, "a+")
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.seek(0)
            text = stream.read()
            stream.close()
            raise _busy(self.output_dir, _parse(text)) from None
        stream.seek(0)
        previous = _parse(stream.read())
        if previous.get("pid"):
            logging.info("taking over %s from a run that ended without releasing it (%s)", self.path, previous)
        stream.seek(0)
        stream.truncate()
        stream.write(json.dumps(_owner()))
        stream.flush()
        self._stream = stream

    def _acquire_remote(self):
        if tf.io.gfile.exists(self.path):
            with tf.io.gfile.GFile(self.path) as stream:
                owner = _parse(stream.read())
            same_host = owner.get("host") == socket.gethostname()
            if not same_host or _alive(int(owner.get("pid") or 0)):
                raise _busy(self.output_dir, owner)
            logging.info("taking over %s from a run that is no longer alive (%s)", self.path, owner)
        files.write_text(self.path, json.dumps(_owner()))
        self._remote = True

    def __exit__(self, *exc):
        if self._stream is not None:
            self._stream.seek(0)
            self._stream.truncate()  # an empty lock file: the last run ended normally
            self._stream.close()  # closing drops the flock; the file stays (removing it would race)
            self._stream = None
        if self._remote:
            tf.io.gfile.remove(self.path)
            self._remote = False
        return False


def _parse(text: str) -> dict:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}
