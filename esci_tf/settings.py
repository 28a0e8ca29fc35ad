"""Settings declared once: each field of a settings dataclass carries its help, choices, bounds
and role in its metadata, and everything else is derived from that declaration.

    @dataclasses.dataclass
    class TrainingConfig:
        batch_size: int = setting(32, "Global batch size.", bounds=(1, None))

The field's annotation is the setting's type; `setting(default, help, ...)` is its default, help
text, fixed choices, (lowest, highest or None) bounds and role. The command lines define one flag
per declared setting (trainers/flags/define.py: same name, type, default, help and choices),
`check_values` checks choices and bounds naming the flag, and the roles decide the rest:

- INPUT: a file, directory or glob the command reads: checked up front (gs:// access) and, for
  a run, recorded by its content (run_data.data_identity), not by its name.
- LOCATION: a pretrained location the command reads (checked up front) recorded by its name.
- RESULT: changes the results: recorded in run_settings.json; a resume with another value is
  refused, and a recipe stage with another value reruns.
- NEUTRAL: a resume may change it (when the run evaluates or checkpoints, where the TPU is); it
  still keys a recipe stage.
- LOCAL: how this one invocation runs (where it writes, whether it resumes, what it prints):
  never recorded.

`added=True` marks a result setting added after runs were recorded: left out of what a run
records while at its default, so the records and stage fingerprints of older runs stay equal.
A record that lacks a declared setting is compared as its default anyway (run_settings).
No absl or TensorFlow import here: the flags' --help and checks stay fast.
"""

import dataclasses
import types
import typing

from esci_tf.errors import FlagError

INPUT, LOCATION, RESULT, NEUTRAL, LOCAL = "input", "location", "result", "neutral", "local"
ROLES = (INPUT, LOCATION, RESULT, NEUTRAL, LOCAL)
KEY = "esci_tf.setting"  # the metadata key of a declared field


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting's declaration (see the module docstring); `field()` makes a dataclass field of it."""

    default: typing.Any
    help: str
    role: str = RESULT
    choices: tuple | None = None
    bounds: tuple | None = None
    required: bool = False
    added: bool = False

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if self.choices is not None and self.default is not None and self.default not in self.choices:
            raise ValueError(f"default {self.default!r} is not one of {self.choices}")

    def field(self, **changes):
        """A dataclass field declared by this setting (`changes`: e.g. another default)."""
        declared = dataclasses.replace(self, **changes)
        return dataclasses.field(default=declared.default, metadata={KEY: declared})


def setting(default, help: str, **declaration):
    """A dataclass field declaring a setting: setting(32, "Global batch size.", bounds=(1, None))."""
    return Setting(default, help, **declaration).field()


@dataclasses.dataclass(frozen=True)
class Declared:
    """A declared setting of a dataclass: its name, type (Optional unwrapped) and declaration."""

    name: str
    type: type
    setting: Setting

    @property
    def default(self):
        return self.setting.default


def declared(cls) -> list:
    """The declared settings of dataclass `cls`, in field order (undeclared fields left out)."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        if KEY not in field.metadata:
            continue
        kind = hints[field.name]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kind = next(t for t in typing.get_args(kind) if t is not type(None))  # Optional[X] -> X
        found.append(Declared(field.name, kind, field.metadata[KEY]))
    return found


def borrowed(cls, name: str, **changes):
    """A field declared as `cls`'s setting `name` (`changes`: e.g. another default): a setting two
    commands share is declared once, where it belongs, and borrowed by the other."""
    return dataclasses.replace(cls.__dataclass_fields__[name].metadata[KEY], **changes).field()


def names(settings, *roles: str) -> tuple:
    """The names of the `settings` (Declared) with one of `roles`."""
    return tuple(s.name for s in settings if s.setting.role in roles)


def check_values(settings, values: dict, error=FlagError) -> None:
    """`error` naming the flag of the first value outside its setting's choices or bounds."""
    for item in settings:
        value, choices, bounds = values[item.name], item.setting.choices, item.setting.bounds
        if choices is not None and value not in choices and not (value is None and item.default is None):
            raise error(f"--{item.name}={value!r}: expected one of {', '.join(map(str, choices))}")
        if bounds is not None and value is not None:
            low, high = bounds
            if value < low or (high is not None and value > high):
                raise error(f"--{item.name}={value}: must be >= {low}" + (f" and <= {high}" if high is not None else ""))
