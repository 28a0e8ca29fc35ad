"""Training progress: a tqdm bar (steps/s, examples/s, loss, ETA) and a final summary table."""

import sys
import time

import keras
from tqdm.auto import tqdm


class ProgressBar(keras.callbacks.Callback):
    """tqdm bar over the whole run (all fit calls), resumed runs starting at `initial_step`.

    Shows loss, steps/s and examples/s of this process; tqdm gives elapsed time and ETA.
    Works with steps_per_execution > 1 (Keras reports the last batch index of each execution).
    """

    def __init__(self, total_steps: int, batch_size: int, initial_step: int = 0, file=None,
                 disable: bool = False):
        super().__init__()
        self.total_steps = int(total_steps)
        self.batch_size = int(batch_size)
        self.step = int(initial_step)
        self._bar = None
        self._file = file
        self._disable = disable
        self._start_time = None
        self._start_step = self.step
        self._fit_start_step = self.step
        self.last_loss = None

    def on_train_begin(self, logs=None):
        if self._bar is None:
            stream = self._file or sys.stderr
            # In a log file (not a terminal) redraw rarely instead of many times a second.
            interval = 0.1 if getattr(stream, "isatty", lambda: False)() else 30.0
            self._bar = tqdm(total=self.total_steps, initial=self.step, unit="step",
                             dynamic_ncols=True, file=stream, disable=self._disable,
                             mininterval=interval)
            self._start_time = time.perf_counter()
        self._fit_start_step = self.step

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_step = self.step

    def on_train_batch_end(self, batch, logs=None):
        new_step = self._epoch_start_step + batch + 1
        self._bar.update(new_step - self.step)
        self.step = new_step
        logs = logs or {}
        if "loss" in logs:
            self.last_loss = float(logs["loss"])
        elapsed = max(time.perf_counter() - self._start_time, 1e-9)
        steps_per_s = (self.step - self._start_step) / elapsed
        self._bar.set_postfix(
            loss=f"{self.last_loss:.4f}" if self.last_loss is not None else "-",
            steps_s=f"{steps_per_s:.2f}",
            examples_s=f"{steps_per_s * self.batch_size:.1f}",
            refresh=False,
        )

    def throughput(self) -> dict:
        """Steps and examples per second of this process so far."""
        elapsed = max(time.perf_counter() - (self._start_time or time.perf_counter()), 1e-9)
        steps = self.step - self._start_step
        return {"steps": steps, "seconds": elapsed, "steps_per_second": steps / elapsed,
                "examples_per_second": steps * self.batch_size / elapsed}

    def close(self):
        if self._bar is not None:
            self._bar.close()


def summary_table(rows, title: str = "") -> str:
    """Plain-text two-column table of (name, value) rows; floats get 4 decimals."""
    rows = [(str(name), f"{value:.4f}" if isinstance(value, float) else str(value))
            for name, value in rows]
    width = max([len(name) for name, _ in rows] + [len(title)])
    value_width = max([len(v) for _, v in rows] + [1])
    line = "-" * (width + value_width + 3)
    out = [line]
    if title:
        out += [title, line]
    out += [f"{name.ljust(width)} | {value.rjust(value_width)}" for name, value in rows]
    out.append(line)
    return "\n".join(out)
