"""One generic mapping between frozen dataclasses and JSON / text, driven by `dataclasses.fields()`.

Every layer that writes a run down or reads it back (PNG metadata, project files, preferences, the
command line, the A1111 text, the GUI controls) goes through these functions, so a new `Request` field is
mapped everywhere by being declared once.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import re
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any


class RecordError(ValueError):
    """A recorded value that cannot be read back as its field's type."""


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """A dataclass field with its resolved type: `kind` is the type without `| None`."""

    name: str
    kind: type
    optional: bool
    default: Any
    metadata: typing.Mapping[str, Any]

    @property
    def is_pixels(self) -> bool:
        return bool(self.metadata.get("pixels"))

    @property
    def flag(self) -> str:
        """The command-line flag, or "" when the field has none."""
        cli = self.metadata.get("cli")
        if cli == "":
            return ""
        return "--" + (cli or self.name).replace("_", "-")

    @property
    def item_kind(self) -> Any:
        """For a list field (`tuple[Item, ...]`): the type of one item, else None."""
        return list_item_kind(self.kind)

    def relevant(self, obj: Any) -> bool:
        test = self.metadata.get("relevant")
        return True if test is None else bool(test(obj))


def list_item_kind(kind: Any) -> Any:
    """T for `tuple[T, ...]`, else None."""
    args = typing.get_args(kind)
    return args[0] if typing.get_origin(kind) is tuple and len(args) == 2 and args[1] is Ellipsis else None


def _unwrap(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return (rest[0] if len(rest) == 1 else functools.reduce(operator.or_, rest)), True
    return hint, False


@functools.cache
def specs(cls: type) -> tuple[FieldSpec, ...]:
    hints = typing.get_type_hints(cls)
    found = []
    for spec in dataclasses.fields(cls):
        kind, optional = _unwrap(hints[spec.name])
        if spec.default is not dataclasses.MISSING:
            default = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory()
        else:
            default = dataclasses.MISSING
        found.append(FieldSpec(spec.name, kind, optional, default, spec.metadata))
    return tuple(found)


def spec(cls: type, name: str) -> FieldSpec:
    return next(found for found in specs(cls) if found.name == name)


# -- JSON -------------------------------------------------------------------------------------------

def encode(value: Any) -> Any:
    """A JSON value: dataclasses as objects of their non-pixel fields, enums by value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {found.name: encode(getattr(value, found.name)) for found in specs(type(value)) if not found.is_pixels}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def decode(cls: type, data: Any, *, lenient: bool = False, where: str = "", recorded: bool = False,
           **overrides: Any) -> Any:
    """A `cls` from its JSON object. Unknown keys (another version's fields) are ignored; a field is also
    found under its command-line name; missing fields take their defaults, or with `recorded` (the object is
    a record of a run that happened) the value the field declares as `unrecorded`: how runs went before the
    field existed, which a record written then could not say. A value of the wrong type raises RecordError, or
    with `lenient` falls back to the field's default. `overrides` replace decoded fields."""
    if not isinstance(data, dict):
        raise RecordError(f"{where or cls.__name__} should be an object, got {data!r}")
    values: dict[str, Any] = {}
    for found in specs(cls):
        if found.is_pixels:
            continue
        keys = [found.name] + ([found.metadata["cli"]] if found.metadata.get("cli") else [])
        key = next((key for key in keys if key in data), None)
        if key is None:
            if recorded and "unrecorded" in found.metadata:
                values[found.name] = found.metadata["unrecorded"]
            continue
        try:
            value = decode_value(found.kind, found.optional, data[key], f"{where}{found.name}", lenient, recorded)
            values[found.name] = _in_range(found, value, f"{where}{found.name}")
        except RecordError:
            if not lenient:
                raise
    values.update(overrides)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        if lenient:
            return cls(**overrides)
        raise RecordError(f"{where or cls.__name__}: {error}") from None


def bound_text(value: float) -> str:
    """A range's end as a person reads it: whole numbers in full (2147483647, not 2.14748e+09)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else f"{value:g}"


def _in_range(found: FieldSpec, value: Any, where: str) -> Any:
    low, high = found.metadata.get("minimum"), found.metadata.get("maximum")
    if value is not None and low is not None and high is not None and not low <= value <= high:
        raise RecordError(f"{where} must be from {bound_text(low)} to {bound_text(high)}, got {value!r}")
    return value


def decode_value(kind: Any, optional: bool, value: Any, where: str, lenient: bool = False,
                 recorded: bool = False) -> Any:
    if value is None:
        if optional:
            return None
        raise RecordError(f"{where} must not be empty")
    if dataclasses.is_dataclass(kind):
        return decode(kind, value, lenient=lenient, where=f"{where}.", recorded=recorded)
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            known = ", ".join(str(member.value) for member in kind)
            raise RecordError(f"{where}: unknown value {value!r} (known: {known})") from None
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise RecordError(f"{where} should be a whole number, got {value!r}")
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise RecordError(f"{where} should be a number, got {value!r}")
    elif kind is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(kind) is tuple:
        if isinstance(value, (list, tuple)):
            inner = list_item_kind(kind)
            if inner is None:
                return tuple(value)
            return tuple(decode_value(inner, False, item, f"{where}[{index}]", lenient, recorded)
                         for index, item in enumerate(value))
    elif typing.get_origin(kind) is dict or kind is dict:
        if isinstance(value, dict):
            item_kind = (typing.get_args(kind) or (str, Any))[1]
            return {str(key): decode_value(item_kind, False, item, f"{where}.{key}", lenient, recorded)
                    for key, item in value.items()}
    elif kind is Any:
        return value
    else:
        return value
    raise RecordError(f"{where} should be {getattr(kind, '__name__', kind)}, got {value!r}")


# -- text (command line, A1111 parameters) ----------------------------------------------------------

def parse_text(found: FieldSpec, text: str) -> Any:
    """A field's value from what a person typed: numbers, enum values, "x,y,w,h" for a box of whole numbers,
    "none" for an optional field left empty. The field's range is checked."""
    text = text.strip()
    if found.optional and text.lower() in ("none", ""):
        return None
    kind = found.kind
    if found.item_kind is not None:
        items = [item for item in _item_separator(found.item_kind).split(text) if item.strip()]
        return tuple(_parse_record(found.item_kind, item) for item in items)
    if dataclasses.is_dataclass(kind):
        return _parse_record(kind, text)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return decode_value(kind, False, text, found.name)
    try:
        value = kind(text) if kind in (int, float) else text
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise RecordError(f"expected {what}, got {text!r}") from None
    return _in_range(found, value, "the value")


@functools.cache
def _item_separator(kind: type) -> re.Pattern:
    """Items of a list field in one text are joined by "; ": split only where the next item's numbers follow, so that
    a phrase may hold a semicolon of its own."""
    inners = list(specs(kind))
    numbers = len(inners) - (1 if inners and inners[-1].kind is str else 0)
    number = r"\s*[-+]?[\d.]+\s*"
    return re.compile(";(?=" + ",".join([number] * numbers) + ("=" if numbers < len(inners) else "") + ")")


def parse_item(found: FieldSpec, text: str) -> Any:
    """One item of a list field from what a person typed (one repeat of its command-line flag)."""
    return _parse_record(found.item_kind, text.strip())


def _parse_record(kind: type, text: str) -> Any:
    """A dataclass from "a,b,c" (its fields in order, numbers); a last text field comes after "=": "a,b,c=text"."""
    inners = list(specs(kind))
    tail = inners.pop() if inners and inners[-1].kind is str else None
    numbers, text_part = text, None
    if tail is not None:
        numbers, equals, text_part = text.partition("=")
        if not equals:
            raise RecordError(f"expected {','.join(inner.name for inner in inners)}={tail.name}, got {text!r}")
    parts = [part.strip() for part in numbers.split(",")]
    if len(parts) != len(inners):
        shape = ",".join(inner.name for inner in inners) + (f"={tail.name}" if tail else "")
        raise RecordError(f"expected {shape} ({len(inners)} numbers), got {text!r}")
    values = {inner.name: parse_text(inner, part) for inner, part in zip(inners, parts, strict=True)}
    if tail is not None:
        values[tail.name] = text_part.strip()
    try:
        return kind(**values)
    except (TypeError, ValueError) as error:
        raise RecordError(str(error)) from None


def format_text(value: Any) -> str:
    """The inverse of parse_text."""
    if value is None:
        return "none"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inners = list(specs(type(value)))
        tail = inners.pop() if inners and inners[-1].kind is str else None
        numbers = ",".join(format_text(getattr(value, inner.name)) for inner in inners)
        return numbers + ("=" + getattr(value, tail.name) if tail else "")
    if isinstance(value, tuple) and not value:
        return ""
    if isinstance(value, tuple) and all(dataclasses.is_dataclass(item) for item in value):
        return "; ".join(format_text(item) for item in value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
