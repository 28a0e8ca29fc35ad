"""SIGTERM ends a training run with a checkpoint at the step it reached: what a spot or
preemptible Cloud TPU / Compute Engine VM gets before it is reclaimed (about 30 s before the
power goes), and what `kill`, systemd or a scheduler send. SIGINT (Ctrl-C) does the same.

`with Watch() as watch:` (train_lib.run_experiment holds one for the whole run) replaces the
SIGTERM and SIGINT handlers of the main thread for the block. What either signal (called SIGTERM
below) does depends on where the run is:

- in the training loop and in checkpoint saves (`with watch.deferred():`) it only sets
  `watch.requested`; the loop stops at the end of the current batch, saves a checkpoint of
  exactly that step and raises Preempted(step): so the weights, optimizer state and data
  position saved agree, and a resumed run continues at that batch;
- anywhere else (reading data, building TFRecords, an evaluation: `with watch.immediate():`)
  it raises Preempted at once. Nothing there is trusted half-done: every file is written under
  a temporary name and renamed (esci_tf.files.atomic_path), which the exception removes, and an
  interrupted evaluation is redone by the resumed run.

Preempted is a BaseException, as KeyboardInterrupt is, so no `except Exception` swallows it; the
entry points (esci_tf.cli) end with its `exit_code`, 128 + the signal (the status a shell reports
for a process that signal ended: EXIT_CODE, 143, for SIGTERM, which the TPU launch scripts take as
"relaunch"; 130 for SIGINT, which they do not) and one line, `<program>: preempted at step N;
rerun the same command to resume` (SIGINT: `interrupted at step N; ...`). A second signal while
the first is being handled changes nothing.

>>> str(Preempted(12))
'preempted at step 12; rerun the same command to resume'
>>> stopped = Preempted(12, signal.SIGINT)
>>> str(stopped), stopped.exit_code
('interrupted at step 12; rerun the same command to resume', 130)
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
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(BaseException):
    """The run was stopped by SIGTERM (or SIGINT: `signum`); `step` is the step its checkpoint
    holds (None until known)."""

    def __init__(self, step: int | None = None, signum: int = signal.SIGTERM):
        super().__init__(step)
        self.step = step
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self):
        how = "interrupted" if self.signum == signal.SIGINT else "preempted"
        return f"{how} at step {self.step}; rerun the same command to resume"


class Watch:
    """The run's SIGTERM and SIGINT handler (see the module docstring). Outside the main thread,
    where Python cannot take signals, it installs nothing and `requested` stays False. `signum`:
    the first signal that came."""

    def __init__(self):
        self.requested = False
        self.signum = signal.SIGTERM
        self._deferred = 0
        self._raised = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._on_signal) for signum in SIGNALS}
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False

    def _on_signal(self, signum, frame):
        if not self.requested:
            self.signum = signum
            logging.warning("%s: stopping the run at the next safe point with a checkpoint",
                            signal.Signals(signum).name)
        self.requested = True
        if not self._deferred:
            self._raise()

    def _raise(self):
        if not self._raised:
            self._raised = True
            raise Preempted(signum=self.signum)

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
