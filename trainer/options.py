"""How a config field is declared: its default, its one description and its check.

Each field of the config's parts (trainer.train_config) is `option(...)`: the help its
flag shows (trainer.flags builds the flag from it), the check its value must pass, the
default a conditional run, a run on another data set or a folder run of a given image
size takes instead, and the value that rebuilds a run whose config.json was written
before the field existed.
Declared once, read everywhere.
"""

import dataclasses

from trainer import budget

_UNSET = object()

# Each check: (does the value pass, what it must be).
CHECKS = {
    "positive": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "non_negative": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "positive_number": (lambda v: _is_number(v) and v > 0, "> 0"),
    "non_negative_number": (lambda v: _is_number(v) and v >= 0, ">= 0"),
    "fraction": (lambda v: _is_number(v) and 0 <= v < 1, "in [0, 1)"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "text": (lambda v: isinstance(v, str), "text"),
    "eval_samples": (lambda v: _is_int(v) and (v == 0 or v >= 10), "0 (off) or at least 10"),
    "duration": (lambda v: _is_duration(v), "a positive duration: 90s, 20m or 1.5h"),
}


def option(
    default,
    help: str,
    check: str = None,
    *,
    choices: tuple = None,
    optional: bool = False,
    hint: str = "",
    conditional=_UNSET,
    dataset: dict = None,
    folder: dict = None,
    absent=_UNSET,
    flag: bool = True,
    metavar: str = None,
):
    """A config field.

    Args:
      default: its value in a fresh run.
      help: what it does and why, once: the flag's help and the field's description.
      check: a CHECKS key its value must pass (None when `choices` says it all).
      choices: the values it may take.
      optional: None is allowed too (and means what `help` says).
      hint: what to try instead, added to the error for a bad value.
      conditional: its default in a conditional run, where that differs.
      dataset: data set name -> its default in a run on that data set, where that
        differs.
      folder: image size -> its default in a --dataset folder run of that size, where
        that differs.
      absent: its value for a config.json written before the field existed, where that
        differs from `default` (what rebuilds the run that wrote it).
      flag: the command line sets it (not, e.g., a value the machine resolves).
      metavar: the flag's value placeholder in --help.
    """
    metadata = {
        "help": help,
        "check": check,
        "choices": choices,
        "optional": optional,
        "hint": hint,
        "flag": flag,
        "metavar": metavar,
    }
    if conditional is not _UNSET:
        metadata["conditional"] = conditional
    if dataset is not None:
        metadata["dataset"] = dataset
    if folder is not None:
        metadata["folder"] = folder
    if absent is not _UNSET:
        metadata["absent"] = absent
    return dataclasses.field(default=default, metadata=metadata)


def check_fields(config) -> None:
    """Raises ValueError naming the first field of `config` whose value fails its
    option's check or choices, with the value and, where the option has one, a hint."""
    for field in dataclasses.fields(config):
        meta, value = field.metadata, getattr(config, field.name)
        if "help" not in meta or (value is None and meta["optional"]):
            continue
        if meta["choices"] is not None and value not in meta["choices"]:
            _fail(field.name, "one of " + ", ".join(map(str, meta["choices"])), value, meta)
        if meta["check"] is not None:
            passes, what = CHECKS[meta["check"]]
            if not passes(value):
                _fail(field.name, what, value, meta)


def _fail(name, what, value, meta):
    hint = f"; {meta['hint']}" if meta["hint"] else ""
    raise ValueError(f"{name} must be {what}, got {value!r}{hint}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_duration(value) -> bool:
    try:
        budget.parse_duration(value)
    except ValueError:
        return False
    return isinstance(value, str)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
