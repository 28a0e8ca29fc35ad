"""The flags of trainers.recipe: every trainers.fit flag (the settings of each fine-tune) plus one
per esci_tf.recipe.config.RecipeConfig setting, as declared there (trainers.flags.define)."""

from absl import flags

from esci_tf.recipe.config import RecipeConfig
from esci_tf.settings import declared
from trainers.flags import fit_flags
from trainers.flags.define import define_settings, setting_values

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """The fit flags and the recipe flags, once per process."""
    fit_flags.define_flags(flag_values)
    if "num_folds" not in flag_values:
        define_settings(declared(RecipeConfig), flag_values)


def recipe_config(flag_values=FLAGS) -> RecipeConfig:
    """The RecipeConfig the parsed flags describe (checked by RecipeConfig.validate)."""
    values = setting_values(declared(RecipeConfig), flag_values)
    values["train_folds"] = tuple(int(f) for f in values["train_folds"])
    return RecipeConfig(run=fit_flags.run_config(flag_values), output_dir=flag_values.output_dir, **values)
