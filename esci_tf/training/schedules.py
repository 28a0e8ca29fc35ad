"""Learning-rate schedules of the training recipes."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="esci_tf")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """peak * (step + 1) / warmup during warmup, then linear decay to 0 at total_steps.

    `step` is the optimizer's batch counter (Keras schedules see every batch, also with
    gradient accumulation)."""

    def __init__(self, peak_learning_rate: float, warmup_steps: int, total_steps: int):
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"--warmup_steps must be in [0, {total_steps}], got {warmup_steps}")
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rising = (step + 1.0) / float(max(self.warmup_steps, 1))
        falling = (float(self.total_steps) - step) / float(max(self.total_steps - self.warmup_steps, 1))
        factor = ops.where(step < float(self.warmup_steps), rising, falling)
        return self.peak_learning_rate * ops.clip(factor, 0.0, 1.0)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate,
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}
