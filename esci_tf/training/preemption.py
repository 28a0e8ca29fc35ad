"""SIGTERM ends a training run with a checkpoint at the step it reached: what a spot or
preemptible Cloud TPU / Compute Engine VM gets before it is reclaimed (about 30 s before the
power goes), and what `kill`, systemd or a scheduler send.

`with Watch() as watch:` (train_lib.run_experiment holds one for the whole run) replaces the
SIGTERM handler of the main thread for the block. What a SIGTERM does depends on where the run is:

- in the training loop and in checkpoint saves (`with watch.deferred():`) it only sets
  `watch.requested`; the loop stops at the end of the current batch, saves a checkpoint of
  exactly that step and raises Preempted(step): so the weights, optimizer state and data
  position saved agree, and a resumed run continues at that batch;
- anywhere else (reading data, building TFRecords, an evaluation: `with watch.immediate():`)
  it raises Preempted at once. Nothing there is trusted half-done: every file is written under
  a temporary name and renamed (esci_tf.files.atomic_path), which the exception removes, and an
  interrupted evaluation is redone by the resumed run.

Preempted is a BaseException, as KeyboardInterrupt is, so no `except Exception` swallows it; the
entry points (esci_tf.cli) end with EXIT_CODE (143, 128 + SIGTERM, the status a shell reports for
a process SIGTERM ended) and one line, `<program>: preempted at step N; rerun the same command to
resume`. A second SIGTERM while the first is being handled changes nothing.

>>> str(Preempted(12))
'preempted at step 12; rerun the same command to resume'
>>> import os
>>> with Watch() as watch, watch.deferred():
...     os.kill(os.getpid(), signal.SIGTERM)
...     watch.requested
True
"""

import contextlib
import signal
import threading

from absl import logging

EXIT_CODE = 128 + signal.SIGTERM


class Preempted(BaseException):
    """The run was stopped by SIGTERM; `step` is the step its checkpoint holds (None until known)."""

    def __init__(self, step: int | None = None):
        super().__init__(step)
        self.step = step

    def __str__(self):
        return f"preempted at step {self.step}; rerun the same command to resume"


class Watch:
    """The run's SIGTERM handler (see the module docstring). Outside the main thread, where
    Python cannot take signals, it installs nothing and `requested` stays False."""

    def __init__(self):
        self.requested = False
        self._deferred = 0
        self._raised = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
        return False

    def _on_sigterm(self, signum, frame):
        if not self.requested:
            logging.warning("SIGTERM: stopping the run at the next safe point with a checkpoint")
        self.requested = True
        if not self._deferred:
            self._raise()

    def _raise(self):
        if not self._raised:
            self._raised = True
            raise Preempted()

    @contextlib.contextmanager
    def deferred(self):
        """A SIGTERM in the block only sets `requested` (the caller stops at a safe point)."""
        self._deferred += 1
        try:
            yield self
        finally:
            self._deferred -= 1

    @contextlib.contextmanager
    def immediate(self):
        """A SIGTERM in the block (or one already requested) raises Preempted at once, also
        inside a deferred block (an evaluation the training loop calls)."""
        saved, self._deferred = self._deferred, 0
        try:
            if self.requested:
                self._raise()
            yield self
        finally:
            self._deferred = saved
