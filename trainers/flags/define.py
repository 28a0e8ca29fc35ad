"""The one way every entry point defines its flags: one absl flag per declared setting
(esci_tf.settings), with the setting's name, type, default, help and choices.

A choice setting is an enum flag, a bool a --[no]name flag, an int or float a number flag, a
tuple a comma list, anything else (text, paths, JSON objects) a string flag; `required`
settings are required flags. Bounds are not given to absl: the settings' checks name the flag
(esci_tf.settings.check_values), so a value out of bounds reads the same from a flagfile, the
command line or a library call. `aliases` keeps a flag name users type working for a setting
that has another name ({"seed": "fold_seed"}: --seed sets --fold_seed).
"""

from absl import flags

flags.disclaim_key_flags()  # the flags are the key flags of the module that calls define_settings


def define_settings(settings, flag_values, aliases=None) -> None:
    """Define one flag per declared setting in `settings` (esci_tf.settings.Declared) in `flag_values`."""
    for item in settings:
        declared, name = item.setting, item.name
        common = dict(flag_values=flag_values, required=declared.required)
        if declared.choices is not None:
            flags.DEFINE_enum(name, declared.default, [str(c) for c in declared.choices], declared.help, **common)
        elif item.type is bool:
            flags.DEFINE_bool(name, declared.default, declared.help, **common)
        elif item.type is int:
            flags.DEFINE_integer(name, declared.default, declared.help, **common)
        elif item.type is float:
            flags.DEFINE_float(name, declared.default, declared.help, **common)
        elif item.type is tuple:
            flags.DEFINE_list(name, list(declared.default), declared.help, **common)
        else:  # str, and dict settings given as JSON text
            flags.DEFINE_string(name, declared.default, declared.help, **common)
    for alias, name in (aliases or {}).items():
        flags.DEFINE_alias(alias, name, flag_values=flag_values)


def setting_values(settings, flag_values) -> dict:
    """{name: value} of the parsed flags of `settings`: comma lists as tuples; an empty text
    whose default is unset is unset (`--checkpoint=`)."""
    values = {}
    for item in settings:
        value = flag_values[item.name].value
        if item.type is tuple:
            value = tuple(value or ())
        elif item.default is None and value == "":
            value = None
        values[item.name] = value
    return values
