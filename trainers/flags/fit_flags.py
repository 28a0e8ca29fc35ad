"""The flags of trainers.fit: one per esci_tf.training.config.RunConfig setting, same name,
type, default, help and choices (declared once on the config's fields, esci_tf.settings), and
written back as a flagfile.

The config checks the values (RunConfig.validate) and names the flag when one cannot work.
Step counts (--steps, --warmup_steps, --eval_every_steps, --checkpoint_every_steps) count
batches of --batch_size, which is also what Keras learning-rate schedules see; with
--gradient_accumulation=N the optimizer updates the weights every N batches.
"""

import json

from absl import flags

from esci_tf import command_line
from esci_tf.training import config as config_lib
from trainers.flags import DIRECTORY
from trainers.flags.define import define_settings, setting_values

FLAGS = flags.FLAGS
BACKBONES = config_lib.BACKBONE_NAMES  # the registry's families
# Settings of which a run takes one: the command line's replaces a flagfile's (esci_tf.command_line).
ALTERNATIVES = ((("examples", "products"), ("train_tfrecords", "eval_tfrecords"), ("synthetic_queries",)),
                (("checkpoint",), ("backbone_config",)))



def define_flags(flag_values=FLAGS):
    """Define the fit flags once per process, one per RunConfig setting (trainers.flags.define)."""
    if "backbone" not in flag_values:
        define_settings(config_lib.settings(), flag_values)


def parse(argv, flag_values=FLAGS) -> list:
    """Parse fit (or recipe) flags as the entry points do: shipped flagfiles by bare name, the
    command line's alternative replacing a flagfile's (esci_tf.command_line)."""
    flag_values.unparse_flags()
    return command_line.parse(flag_values, list(argv), DIRECTORY, ALTERNATIVES)


def run_config(flag_values=FLAGS):
    """The RunConfig the parsed fit flags describe (checked by RunConfig.validate, not here).
    An empty text setting whose default is unset is unset (`--checkpoint=`, `--backbone_config=`)."""
    values = setting_values(config_lib.settings(), flag_values)
    values["length_buckets"] = tuple(_int_or_text(v) for v in values["length_buckets"])
    if values["backbone_config"] is not None:
        try:
            values["backbone_config"] = json.loads(values["backbone_config"])
        except json.JSONDecodeError as error:
            raise config_lib.ConfigError(f"--backbone_config must be a JSON object ({error})") from error
    return config_lib.RunConfig.from_flat(values)


def _int_or_text(value):
    try:
        return int(value)
    except ValueError:
        return value


def flags_as_flagfile(flag_values=FLAGS) -> str:
    """The fit flags with their values, one --name=value a line (a valid flagfile)."""
    names = {item.name for item in config_lib.settings()}
    lines = [flag_values[name].serialize() for name in sorted(names) if flag_values[name].value is not None]
    return "\n".join(lines) + "\n"
