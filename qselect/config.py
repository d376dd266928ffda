"""TOML run configuration: load, validate against a command's options, resolve, write back.

Every command-line option can also come from a TOML file (``--config run.toml``).
Keys are the option names (``qubits``, ``formulation``, ``finetune-epochs`` or
``finetune_epochs``). Top-level keys apply to the command being run; a table
named after a command (``[compare]``) applies only to that command. Precedence:
explicit command-line flag > config file > built-in default. Unknown keys and
wrong types are errors that name the key, the expected type and the valid keys,
because a silently ignored typo would run a different experiment than the user
asked for.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import QSelectError

#: kinds an option value can have; "floats"/"ints"/"strs" are lists
KINDS = ("str", "int", "float", "bool", "floats", "ints", "strs")


@dataclass(frozen=True)
class OptionSpec:
    """What the config loader needs to know about one option."""

    name: str  # the argparse dest (underscores)
    kind: str  # one of KINDS
    default: Any = None
    choices: tuple | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}")


def normalise_key(key: str) -> str:
    """A config key in canonical form: surrounding spaces removed, dashes turned into underscores.

    Parameters
    ----------
    key : str

    Returns
    -------
    str
    """
    return key.strip().replace("-", "_")


def coerce(spec: OptionSpec, value: Any, where: str) -> Any:
    """Check a TOML value against the option's kind; return it in canonical form.

    Parameters
    ----------
    spec : OptionSpec
    value : object
        As read from TOML.
    where : str
        Location for the message (file and key).

    Returns
    -------
    object

    Raises
    ------
    QSelectError
        Naming the key, the expected type and the value.
    """
    kind = spec.kind
    key = spec.name.replace("_", "-")

    def bad(expected: str):
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        return QSelectError(
            f"{where}: key '{key}' must be {expected}, got {type(value).__name__} {shown}; "
            f"fix the value in the config file"
        )

    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        out = value
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        out = float(value)
        if not math.isfinite(out):
            raise bad("a finite number")
    elif kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        out = value
    else:  # lists
        item_kind = {"floats": "float", "ints": "int", "strs": "str"}[kind]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # a single value is a one-element list
        if not isinstance(value, list):
            raise bad(f"a list of {item_kind}s")
        item = OptionSpec(spec.name, item_kind, choices=spec.choices)
        return [coerce(item, v, where) for v in value]
    if spec.choices is not None and out not in spec.choices:
        raise QSelectError(
            f"{where}: key '{key}' is {out!r}; valid values: {', '.join(map(str, spec.choices))}"
        )
    return out


def load_config(path, schema: Mapping[str, OptionSpec], command: str,
                commands: Iterable[str] = (), known: Iterable[str] = ()) -> dict:
    """Read a TOML file and return the validated values that apply to ``command``.

    ``schema`` maps option names to specs for ``command``; ``commands`` lists
    every command name so that ``[other]`` tables are recognised (and skipped).

    Parameters
    ----------
    path : str or os.PathLike
    schema : mapping of str -> OptionSpec
    command : str
    commands : iterable of str
    known : iterable of str
        Keys accepted but not used by this command.

    Returns
    -------
    dict

    Raises
    ------
    QSelectError
        On bad TOML, unknown keys (listing the valid ones) or wrong types.
    """
    path = Path(path)
    if path.is_dir():
        hint = f" (e.g. {path / 'config.toml'})" if (path / "config.toml").is_file() else ""
        raise QSelectError(f"--config {path} is a folder; give the TOML file itself{hint}")
    if not path.is_file():
        raise QSelectError(f"config file {path} does not exist; check the path given to --config")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except PermissionError:
        raise QSelectError(f"config file {path} is not readable (permission denied); check its permissions") from None
    except UnicodeDecodeError:
        raise QSelectError(f"config file {path} is not UTF-8 text; save it as a TOML text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise QSelectError(f"config file {path} is not valid TOML ({exc}); fix the syntax") from None
    # command tables: [compare], and [hardware.submit] for a command group's verbs
    tables = {c.split(" ", 1)[0] for c in set(commands) | {command}}
    known = set(known)
    out: dict = {}
    section = {}
    for raw_key, value in data.items():
        key = normalise_key(raw_key)
        if isinstance(value, dict) and raw_key in tables:
            head, _, verb = command.partition(" ")
            if raw_key == head:
                section = value.get(verb, {}) if verb else value
            continue
        if key not in schema and key in known:
            continue  # another command's option: one config file serves every command
        out[key] = _checked(key, value, schema, f"config {path}", command)
    for raw_key, value in section.items():
        key = normalise_key(raw_key)
        out[key] = _checked(key, value, schema, f"config {path} [{command}]", command)
    return out


def _checked(key, value, schema, where, command):
    if key not in schema:
        valid = ", ".join(sorted(k.replace("_", "-") for k in schema))
        raise QSelectError(
            f"{where}: unknown key '{key.replace('_', '-')}' for 'qselect {command}'; "
            f"valid keys: {valid}"
        )
    return coerce(schema[key], value, where)


def resolve(schema: Mapping[str, OptionSpec], config: Mapping | None = None,
            explicit: Mapping | None = None) -> dict:
    """Defaults, overridden by the config file, overridden by explicit flags.

    Parameters
    ----------
    schema : mapping of str -> OptionSpec
    config : mapping or None
        Values from ``--config``.
    explicit : mapping or None
        Values given as flags.

    Returns
    -------
    dict
    """
    out = {name: spec.default for name, spec in schema.items()}
    out.update(config or {})
    out.update(explicit or {})
    return out


def to_toml(values: Mapping[str, Any], header: str = "") -> str:
    """Write a flat mapping as TOML (None values become comments) so it can be reused with --config.

    Parameters
    ----------
    values : mapping of str -> object
    header : str
        Comment written first.

    Returns
    -------
    str
    """
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    for key in sorted(values):
        value = values[key]
        name = key.replace("_", "-")
        if value is None:
            lines.append(f"# {name} = (not set)")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Path):
        v = str(v)
    s = str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
