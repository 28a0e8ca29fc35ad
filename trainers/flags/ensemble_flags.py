"""The flags of trainers.ensemble, one per esci_tf.ensembles.settings.EnsembleSettings setting
(trainers.flags.define), in their own FlagValues so they never clash with fit's."""

from absl import flags

from esci_tf.ensembles.settings import EnsembleSettings
from esci_tf.settings import declared
from trainers.flags.define import define_settings, setting_values

ENSEMBLE_FLAGS = flags.FlagValues()


def define_flags(flag_values=ENSEMBLE_FLAGS):
    """Define the ensemble flags once in `flag_values`."""
    if "runs" not in flag_values:
        define_settings(declared(EnsembleSettings), flag_values)
    return flag_values


def ensemble_settings(flag_values=ENSEMBLE_FLAGS) -> EnsembleSettings:
    """The EnsembleSettings the parsed flags describe."""
    return EnsembleSettings(**setting_values(declared(EnsembleSettings), flag_values))
