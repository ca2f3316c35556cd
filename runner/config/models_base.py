"""Shared pieces of the configuration models: the base class, GitLab-worded errors, short forms.

Every model forbids unknown keys and is strict (a YAML `'true'` is not a boolean, `"5"` is not
an integer), as GitLab's schema is. Short forms GitLab accepts (a string where a list is meant, a
bare integer for `retry`, ...) are turned into the one long form by *before* validators, so the
consumers of the models read a single shape.

Validators raise `gitlab_error("config should be ...")`: the message is relative to the value
being checked and `runner.config.validate` prefixes it with the GitLab path of that value
(`jobs:build:cache:key config cannot contain the "/" character`).
"""

import importlib
import re
from functools import cache
from typing import Any, ClassVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

# How deep GitLab lets script arrays nest (`script: [[a, b], c]`).
MAX_NESTING = 10


class Model(BaseModel):
    """Base of every configuration model: strict, no unknown keys, names by alias or field.

    A key written with no value (`image:`) is, for GitLab's schema (the shape check), an error
    unless the model lists it in `NULLABLE`; GitLab's processor (the full check) takes it as
    not written at all.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        populate_by_name=True,
        frozen=True,
        arbitrary_types_allowed=True,
        # built on first use: see `Deferred`
        defer_build=True,
    )
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="wrap")
    @classmethod
    def _blank_keys(cls, value: Any, handler: ModelWrapValidatorHandler, info: ValidationInfo):
        if not isinstance(value, dict):
            return handler(value)
        known = _known_keys(cls) - cls.NULLABLE
        blank = [key for key, item in value.items() if item is None and key in known]
        if not blank:
            return handler(value)
        rest = {key: item for key, item in value.items() if key not in blank}
        if not shape_only(info):
            return handler(rest)
        # Every blank key is reported, and so is every other problem of the same hash.
        errors = [_blank_error(key) for key in blank]
        try:
            handler(rest)
        except ValidationError as exc:
            errors += _details(exc)
        raise ValidationError.from_exception_data(cls.__name__, errors)


def _blank_error(key: Any) -> dict:
    error = PydanticCustomError("gitlab", "config can't be blank")
    return {"type": error, "loc": (key,), "input": None}


def _details(exc: ValidationError) -> list[dict]:
    """`exc`'s errors as input for a new ValidationError (messages kept as they are)."""
    details = []
    for error in exc.errors():
        kind: Any = error["type"]
        if kind.startswith("gitlab"):
            kind = PydanticCustomError(kind, error["msg"], error.get("ctx"))
        detail = {"type": kind, "loc": error["loc"], "input": error.get("input")}
        if "ctx" in error and isinstance(kind, str):
            detail["ctx"] = error["ctx"]
        details.append(detail)
    return details


class Deferred:
    """A field whose type is built into a validator only when a file first writes the key.

    pydantic builds a validator for every model class, and a parent's validator holds a copy
    of each model below it: eagerly, `JobConfig` alone compiled most of the tree again, and
    `pyci list` paid for ~47 models at import. A field declared
    `Annotated[ImageConfig | None, Deferred(ImageConfig)]` keeps its type for readers, but
    pydantic sees a plain function; the target's validator is built on first use and shared by
    every field deferring to it. A target given as "module:Name" is also imported on first use
    (the models of keywords with no local effect). Errors keep their place: a ValidationError
    raised here is merged into the caller's, under this field's key.
    """

    def __init__(self, target: Any):
        self.target = target

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        # `handler(source)` is deliberately not called: that is what builds the target.
        return core_schema.with_info_plain_validator_function(self._validate)

    def _validate(self, value: Any, info: ValidationInfo) -> Any:
        if value is None:  # a blank key the model lets through (see `Model.NULLABLE`)
            return None
        return _validator_of(self.target)(value, context=info.context)


_VALIDATORS: dict[Any, Any] = {}


def _validator_of(target: Any) -> Any:
    key = target if isinstance(target, str) else id(target)
    validator = _VALIDATORS.get(key)
    if validator is None:
        resolved = target
        if isinstance(target, str):
            module, _, name = target.partition(":")
            resolved = getattr(importlib.import_module(module), name)
        if isinstance(resolved, type) and issubclass(resolved, BaseModel):
            validator = resolved.model_validate
        else:
            from pydantic import TypeAdapter

            # Models inside a list or dict are built first: a deferred field's value is
            # serialised (`model_dump`) by each model's own serialiser, which must exist.
            for model in _models_in(resolved):
                model.model_rebuild()
            validator = TypeAdapter(resolved, config=ConfigDict(strict=True)).validate_python
        _VALIDATORS[key] = validator
    return validator


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes an annotation names (`list[X]`, `dict[str, X]`, `Annotated[...]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


@cache
def _known_keys(model: type[BaseModel]) -> frozenset[str]:
    fields = model.model_fields
    return frozenset(field.alias or name for name, field in fields.items()) | frozenset(fields)


def gitlab_error(message: str) -> PydanticCustomError:
    """An error whose message is used as written (no pydantic prefix)."""
    return PydanticCustomError("gitlab", message)


def entry_error(message: str) -> PydanticCustomError:
    """An error of a key that GitLab checks both as an attribute of its holder and as an
    entry of its own, raised by the entry: worded at the key's path (`jobs:x:rules config
    can't be blank`)."""
    return PydanticCustomError("gitlab_entry", message)


def attribute_error(message: str, key: str | None = None) -> PydanticCustomError:
    """An error GitLab words after the key, from the place holding it:
    `jobs:build when should be one of: ...` rather than `jobs:build:when config ...`.
    `key` names the key when the error is raised by the model holding it."""
    return PydanticCustomError("gitlab_attribute", message, {"key": key} if key else None)


def one_of_attribute(value: Any, allowed: tuple[str, ...], message: str | None = None) -> str:
    """`one_of` worded as GitLab words it for `when:` keys."""
    if not is_str(value) or value not in allowed:
        raise attribute_error(message or f"should be one of: {', '.join(allowed)}")
    return value


def gitlab_error_at(key: Any, message: str) -> PydanticCustomError:
    """An error about the value of `key` inside the value being validated."""
    return PydanticCustomError("gitlab_key", message, {"key": str(key)})


def shape_only(info: ValidationInfo | None) -> bool:
    """Whether this is the schema-level check of one raw file (`--shape-only`)."""
    return bool(info and isinstance(info.context, dict) and info.context.get("shape"))


def is_reference(value: Any) -> bool:
    """A `!reference [job, key]` left unresolved (runner.config.yamlload.Reference or alike)."""
    return isinstance(getattr(value, "path", None), tuple) and not isinstance(value, (str, dict))


def is_str(value: Any) -> bool:
    return isinstance(value, str)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def text(value: Any) -> str:
    if not is_str(value):
        raise gitlab_error("config should be a string")
    return value


def nonempty_text(value: Any) -> str:
    if not is_str(value) or not value:
        raise gitlab_error("config should be a non-empty string")
    return value


def scalar_text(value: Any) -> str:
    """A YAML scalar as GitLab turns it into a variable value: Ruby's `to_s` (`true` ->
    "true", 1 -> "1", 3.10 -> "3.1", 1e20 -> "1.0e+20")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return ruby_float_text(value)
    return str(value)


def ruby_float_text(value: float) -> str:
    """Ruby's `Float#to_s`: the shortest digits that read back the same (as Python's repr),
    written in fixed notation when the decimal exponent is within -4..16, else as
    `d.ddde+XX`; always with a fractional part."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    sign = "-" if value < 0 or (value == 0 and str(value).startswith("-")) else ""
    digits, exponent = _shortest_digits(abs(value))
    point = len(digits) + exponent  # where the decimal point falls in `digits`
    if -4 < point <= 16:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    fraction = digits[1:] or "0"
    return f"{sign}{digits[0]}.{fraction}e{point - 1:+03d}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """(digits, exponent) with value == int(digits) * 10**exponent, digits the shortest
    round-tripping ones, without trailing zeros ("0" for zero)."""
    mantissa, _, exp = repr(value).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0") or "0"
    exponent = int(exp or 0) - len(frac)
    stripped = digits.rstrip("0") or "0"
    return stripped, exponent + len(digits) - len(stripped)


def deep_flatten(value: list) -> list:
    """Ruby's `Array#flatten`: nested arrays spliced in at any depth (what anchors and
    `!reference` produce, which GitLab's entries flatten)."""
    flat: list = []
    for item in value:
        if isinstance(item, list):
            flat.extend(deep_flatten(item))
        else:
            flat.append(item)
    return flat


def require_mapping(value: Any, what: str = "config should be a hash") -> dict:
    if not isinstance(value, dict):
        raise gitlab_error(what)
    return value


def string_list(
    value: Any,
    *,
    allow_string: bool = True,
    min_items: int = 0,
    max_items: int | None = None,
    unique: bool = False,
    what: str = "config should be an array of strings",
) -> list[str]:
    """A list of strings; a lone string becomes a one-item list when `allow_string`."""
    if allow_string and is_str(value):
        value = [value]
    if not isinstance(value, list) or not all(is_str(item) for item in value):
        raise gitlab_error(what)
    if len(value) < min_items:
        raise gitlab_error(
            f"config requires at least {min_items} item{'s' if min_items > 1 else ''}"
        )
    if max_items is not None and len(value) > max_items:
        raise gitlab_error(f"config has too many entries (maximum {max_items})")
    if unique and len(set(value)) != len(value):
        raise gitlab_error("config should not contain duplicate entries")
    return list(value)


def flatten_script(value: Any, *, allow_empty: bool) -> list[str]:
    """`script:` forms: a string, or an array of strings and arrays of strings (flattened).

    GitLab's schema allows one level of nesting (what `!reference` produces); GitLab itself
    flattens up to 10 levels, and so do we.
    """
    what = "config should be a string or a nested array of strings up to 10 levels deep"
    if is_str(value):
        if not value and not allow_empty:
            raise gitlab_error("config can't be blank")
        return [value]
    if not isinstance(value, list):
        raise gitlab_error(what)
    lines: list[str] = []

    def walk(items: list, depth: int) -> None:
        if depth > MAX_NESTING:
            raise gitlab_error(what)
        for item in items:
            if is_str(item):
                lines.append(item)
            elif isinstance(item, list):
                walk(item, depth + 1)
            else:
                raise gitlab_error(what)

    walk(value, 1)
    if not value and not allow_empty:
        raise gitlab_error("config can't be blank")
    return lines


def one_of(value: Any, allowed: tuple[str, ...]) -> str:
    """A string out of a fixed set (a long set is not spelled out)."""
    if not is_str(value) or value not in allowed:
        if len(allowed) > 12:
            shown = value if is_str(value) else repr(value)
            raise gitlab_error(f"config contains an unknown value: {shown}")
        raise gitlab_error(f"config should be one of: {', '.join(allowed)}")
    return value


def matches(value: Any, pattern: str, what: str) -> str:
    """A string in which `pattern` is found (JSON-schema patterns are unanchored searches)."""
    if not is_str(value) or not re.search(pattern, value):
        raise gitlab_error(what)
    return value


# --- GitLab durations -------------------------------------------------------------------------

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "wk": 604800,
    "wks": 604800,
    "week": 604800,
    "weeks": 604800,
    "mo": 2592000,
    "mon": 2592000,
    "mos": 2592000,
    "month": 2592000,
    "months": 2592000,
    "y": 31536000,
    "yr": 31536000,
    "yrs": 31536000,
    "year": 31536000,
    "years": 31536000,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_CLOCK = re.compile(r"^(\d+):([0-5]?\d)(?::([0-5]?\d))?$")


def parse_duration(text: str) -> float:
    """Seconds in a GitLab duration: `1h 30m`, `3 hours`, `90 minutes`, `1d`, `10 min`, `1:30`.

    A bare number means seconds (as ChronicDuration, which GitLab uses, reads it). `and` and
    commas between parts are allowed (`1 hour and 30 minutes`). Raises ValueError otherwise.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r}")
    cleaned = text.strip().lower().replace(",", " ").replace(" and ", " ")
    clock = _CLOCK.match(cleaned)
    if clock:
        first, second, third = clock.groups()
        if third is None:  # h:mm
            return int(first) * 3600 + int(second) * 60
        return int(first) * 3600 + int(second) * 60 + int(third)
    total = 0.0
    position = 0
    found = False
    for part in _PART.finditer(cleaned):
        if cleaned[position : part.start()].strip():
            raise ValueError(f"not a duration: {text!r}")
        number, unit = part.groups()
        if unit and unit not in _UNITS:
            raise ValueError(f"not a duration: {text!r}")
        total += float(number) * _UNITS.get(unit, 1)
        position = part.end()
        found = True
    if not found or cleaned[position:].strip():
        raise ValueError(f"not a duration: {text!r}")
    return total


def check_duration(value: Any, *, limit: float | None = None) -> str:
    if not is_str(value) or not value:
        raise gitlab_error("config should be a duration")
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise gitlab_error("config should be a duration")
    if limit is not None and seconds > limit:
        raise gitlab_error("config should not exceed the limit")
    return value
