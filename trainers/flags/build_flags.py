"""The flags of tfrecords.build, one per esci_tf.command_settings.BuildSettings setting
(trainers.flags.define), in their own FlagValues so they never clash with fit's. --seed, the
name the build's fold seed had before it was the recipe's --fold_seed, stays an alias of it."""

from absl import flags

from esci_tf.command_settings import BuildSettings
from esci_tf.settings import declared
from trainers.flags.define import define_settings, setting_values

BUILD_FLAGS = flags.FlagValues()
ALIASES = {"seed": "fold_seed"}


def define_flags(flag_values=BUILD_FLAGS):
    """Define the build flags once in `flag_values`."""
    if "num_shards" not in flag_values:
        define_settings(declared(BuildSettings), flag_values, aliases=ALIASES)
    return flag_values


def build_arguments(flag_values=BUILD_FLAGS) -> dict:
    """The keyword arguments of tfrecords.build.build_tfrecords the parsed flags give."""
    values = setting_values(declared(BuildSettings), flag_values)
    values["seed"] = values.pop("fold_seed")
    return values
