"""RunLock: one live run per output directory; a killed run's lock is taken over; only the chief locks."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from esci_tf import files
from esci_tf.training.config import ConfigError
from esci_tf.training.run_lock import LOCK_FILE, RunLock, is_chief


def test_a_held_lock_refuses_a_second_holder_until_released(tmp_path):
    with RunLock(str(tmp_path)):
        owner = json.loads((tmp_path / LOCK_FILE).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(ConfigError, match=rf"is in use by another run \(pid {os.getpid()} on host "):
            RunLock(str(tmp_path)).__enter__()
    with RunLock(str(tmp_path)):  # released: free again
        pass
    assert (tmp_path / LOCK_FILE).read_text() == ""


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    code = ("import os, signal, sys; from esci_tf.training.run_lock import RunLock; "
            "RunLock(sys.argv[1]).__enter__(); os.kill(os.getpid(), signal.SIGKILL)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=120)
    assert result.returncode == -signal.SIGKILL
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] != os.getpid()  # left behind
    with RunLock(str(tmp_path)):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def _write_remote_lock(directory, pid, host):
    files.write_text(f"{directory}/{LOCK_FILE}", json.dumps({"pid": pid, "host": host, "started": "earlier"}))


def test_remote_locks_refuse_live_or_foreign_runs_and_take_over_dead_ones():
    directory = "ram://run_lock_test"
    _write_remote_lock(directory, os.getpid(), socket.gethostname())  # alive here
    with pytest.raises(ConfigError, match="in use by another run"):
        RunLock(directory).__enter__()
    _write_remote_lock(directory, 1, "another-host")  # cannot be checked from here
    with pytest.raises(ConfigError, match="on host another-host"):
        RunLock(directory).__enter__()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _write_remote_lock(directory, int(dead.stdout), socket.gethostname())
    with RunLock(directory):
        assert json.loads(tf.io.gfile.GFile(f"{directory}/{LOCK_FILE}").read())["pid"] == os.getpid()
    assert not tf.io.gfile.exists(f"{directory}/{LOCK_FILE}")


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "worker", "index": 0}}, False),
    ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "chief", "index": 0}}, True),
])
def test_only_the_chief_takes_the_lock(monkeypatch, tf_config, chief):
    monkeypatch.delenv("TPU_WORKER_ID", raising=False)
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert is_chief() is chief
