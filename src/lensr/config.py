"""Typed YAML configuration: every field validated, every error a single line.

Each stage declares its config as a pydantic model (``extra="forbid"``); this module
loads YAML into such a model and turns pydantic's multi-line report into one line that
names the file, the field and the problem. :func:`load` is the one "YAML file, then
command-line overrides" merge that every command and the study engine use.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from lensr.errors import LensrError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _as_range(value: Any) -> Any:
    # A scalar means a fixed value; users write `fwhm: 0.16` or `fwhm: [0.14, 0.22]`.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (float(value), float(value))
    return value


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    lo, hi = value
    if lo > hi:
        raise ValueError(f"range [{lo}, {hi}] has its lower bound above its upper bound")
    return value


Range = Annotated[tuple[float, float], BeforeValidator(_as_range), AfterValidator(_ordered)]
"""A closed interval ``[lo, hi]`` sampled uniformly; a scalar is a fixed value."""


def _field_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _describe(error: dict, model: type[BaseModel]) -> str:
    loc = _field_path(error["loc"])
    if error["type"] == "extra_forbidden":
        known = _known_fields(model, error["loc"][:-1])
        hint = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        suffix = f" (did you mean '{hint[0]}'?)" if hint else f" (known: {', '.join(known)})"
        return f"unknown key '{loc}'{suffix}"
    if error["type"] == "missing":
        return f"missing key '{loc}'"
    msg = error["msg"].removeprefix("Value error, ")
    where = f"'{loc}': " if error["loc"] else ""
    got = repr(error.get("input"))
    # Whole sections as "input" would drown the message: show only short values.
    return f"{where}{msg}" + (f" (got {got})" if len(got) <= 60 else "")


def _known_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
        args = getattr(current, "__args__", ())
        current = next((a for a in args if hasattr(a, "model_fields")), current)
    return sorted(getattr(current, "model_fields", {}))


def validate(model: type[M], data: Any, *, source: str) -> M:
    """Build ``model`` from a dict, raising a one-line :class:`LensrError` naming ``source``."""
    if not isinstance(data, dict):
        raise LensrError(
            f"{source}: expected a mapping of keys to values, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise LensrError(f"{source}: {_describe(errors[0], model)}{more}") from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, with one-line errors for missing or malformed files."""
    path = Path(path)
    if not path.is_file():
        raise LensrError(f"config file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, OSError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise LensrError(f"cannot read config file {path}: {reason}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise LensrError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def read_mapping(path: str | Path) -> dict:
    """Read a YAML file that holds a mapping (an empty file is an empty one); anything else
    is a one-line :class:`LensrError` naming the file."""
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LensrError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def shipped_yaml(name_or_path: str | Path, folder: str) -> Path | None:
    """``name_or_path`` itself if it is a YAML path or an existing file, else the YAML of
    that name shipped in lensr's ``folder`` (``presets``, ``studies``); None if there is none.

    Example::

        shipped_yaml("demo", "studies")   # .../lensr/studies/demo.yaml
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    shipped = Path(str(resources.files("lensr") / folder / f"{name_or_path}.yaml"))
    return shipped if shipped.is_file() else None


def load(
    model: type[M],
    path: str | Path | None,
    overrides: dict | None = None,
    *,
    source: str | None = None,
) -> M:
    """Validate ``model`` from the YAML file ``path``, then ``overrides`` merged in
    recursively: the one "YAML file, then command-line overrides" merge of lensr.

    ``path`` None means no file (the overrides alone); ``source`` names the values in error
    messages (default: the path, or "command line" without one). Example::

        load(TrainConfig, "train.yaml", {"lr": 1e-3})   # the file's keys, lr overridden
    """
    base = {} if path is None else read_mapping(path)
    if source is None:
        source = "command line" if path is None else str(path)
    return validate(model, deep_update(base, overrides or {}), source=source)


def deep_update(base: dict, overrides: dict) -> dict:
    """Return ``base`` with ``overrides`` merged in recursively (neither is modified)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out
