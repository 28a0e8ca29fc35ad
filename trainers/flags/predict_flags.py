"""The flags of trainers.predict, one per esci_tf.command_settings.PredictSettings setting
(trainers.flags.define), in their own FlagValues so they never clash with fit's."""

from absl import flags

from esci_tf.command_settings import PredictSettings
from esci_tf.settings import declared
from trainers.flags.define import define_settings

PREDICT_FLAGS = flags.FlagValues()


def define_flags(flag_values=PREDICT_FLAGS):
    """Define the predict flags once in `flag_values`."""
    if "model_dir" not in flag_values:
        define_settings(declared(PredictSettings), flag_values)
    return flag_values
