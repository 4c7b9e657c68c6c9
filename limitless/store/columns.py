"""Row <-> column conversion: each table's columns read from its row dataclass, values
checked and encoded on the way in, decoded on the way out.
"""

from __future__ import annotations

import difflib
import json
import logging
import sqlite3
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from enum import Enum
from typing import Any, Generic, Literal, TypeVar

from limitless.store.rows import Attempt, ControlRequest, Event, Prediction, Run, TaskRow

logger = logging.getLogger(__name__)


# --- row <-> column conversion -----------------------------------------------

_Kind = Literal["str", "int", "float", "bool", "enum", "list", "tuple", "dict", "any"]

# What each kind of column accepts from callers, and how to name it in a message.
_ACCEPTS: dict[str, tuple[tuple[type, ...], str]] = {
    "str": ((str,), "a str"),
    "int": ((int,), "an int"),
    "float": ((int, float), "a number"),
    "bool": ((bool, int), "a bool"),
    "list": ((list, tuple), "a list"),
    "tuple": ((list, tuple), "a tuple"),
    "dict": ((dict,), "a dict"),
}


@dataclass(frozen=True)
class _Column:
    """How one dataclass field is written to and read from its column."""

    name: str
    kind: _Kind
    optional: bool
    enum: type[Enum] | None = None

    def encode(self, owner: str, value: object) -> object:
        """The SQLite value for `value`; ValueError/TypeError naming the field if it is wrong."""
        if value is None:
            if not self.optional:
                msg = f"{owner} field {self.name!r} cannot be None"
                raise ValueError(msg)
            return None
        if self.enum is not None:
            try:
                return self.enum(value).value
            except ValueError:
                accepted = ", ".join(str(member.value) for member in self.enum)
                msg = f"{owner} field {self.name!r} got {value!r}; accepted: {accepted}"
                raise ValueError(msg) from None
        accepts = _ACCEPTS.get(self.kind)
        if accepts is not None:
            types_, expected = accepts
            if not isinstance(value, types_) or (isinstance(value, bool) and self.kind != "bool"):
                msg = f"{owner} field {self.name!r} takes {expected}, got {type(value).__name__}"
                raise TypeError(msg)
        if self.kind == "bool":
            return 1 if value else 0
        if self.kind in ("list", "tuple", "dict"):
            return json.dumps(value, sort_keys=True, default=str)
        return value

    def decode(self, value: object) -> object:
        """The field value for a SQLite value read back."""
        if value is None:
            return None
        if self.enum is not None:
            return self.enum(value)
        if self.kind == "bool":
            return bool(value)
        if self.kind == "float" and isinstance(value, int):
            return float(value)
        if self.kind in ("list", "tuple", "dict") and isinstance(value, str):
            loaded = json.loads(value)
            return tuple(loaded) if self.kind == "tuple" else loaded
        return value


def _column(name: str, hint: object) -> _Column:
    """Describe the column of field `name` from its type hint."""
    optional = False
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else object
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _Column(name, "enum", optional, hint)
    simple: dict[object, _Kind] = {
        str: "str",
        int: "int",
        float: "float",
        bool: "bool",
        list: "list",
        tuple: "tuple",
        dict: "dict",
    }
    return _Column(name, simple.get(typing.get_origin(hint) or hint, "any"), optional)


R = TypeVar("R")


class _Table(Generic[R]):
    """A table whose columns are exactly the fields of the row dataclass `row`."""

    def __init__(self, name: str, row: type[R], key: tuple[str, ...], generated: str = "") -> None:
        hints = typing.get_type_hints(row)
        self.name = name
        self.row = row
        self.key = key
        self.generated = generated  # a column SQLite assigns on insert ("" = none)
        self.columns = {f.name: _column(f.name, hints[f.name]) for f in dataclass_fields(row)}  # type: ignore[arg-type]
        self.select = f"SELECT {', '.join(self.columns)} FROM {name}"

    def load(self, row: sqlite3.Row) -> R:
        values = {name: column.decode(row[name]) for name, column in self.columns.items()}
        return self.row(**values)

    def insert_sql(self) -> tuple[str, list[str]]:
        names = [name for name in self.columns if name != self.generated]
        marks = ", ".join("?" for _ in names)
        return f"INSERT INTO {self.name} ({', '.join(names)}) VALUES ({marks})", names

    def values(self, row: R, names: Sequence[str]) -> list[object]:
        owner = self.row.__name__
        return [self.columns[name].encode(owner, getattr(row, name)) for name in names]

    def assignments(self, updates: Mapping[str, object]) -> tuple[str, list[object]]:
        """`col = ?, ...` and its parameters; names are checked against the fields."""
        owner = self.row.__name__
        parts: list[str] = []
        params: list[object] = []
        for name, value in updates.items():
            column = self.columns.get(name)
            if column is None:
                near = difflib.get_close_matches(name, list(self.columns), n=1)
                hint = (
                    f"; did you mean {near[0]!r}?"
                    if near
                    else f"; fields: {', '.join(self.columns)}"
                )
                msg = f"unknown {owner} field {name!r}{hint}"
                raise ValueError(msg)
            if name in self.key or name == self.generated:
                msg = f"{owner} field {name!r} is part of the key and cannot be updated"
                raise ValueError(msg)
            parts.append(f"{column.name} = ?")
            params.append(column.encode(owner, value))
        return ", ".join(parts), params


RUNS = _Table("runs", Run, ("id",))
TASKS = _Table("tasks", TaskRow, ("run_id", "id"))
ATTEMPTS = _Table("attempts", Attempt, ("run_id", "task_id", "attempt"))
EVENTS = _Table("events", Event, ("id",), generated="id")
CONTROLS = _Table("controls", ControlRequest, ("id",), generated="id")
PREDICTIONS = _Table("predictions", Prediction, ("run_id", "task_id", "other"))
TABLES: tuple[_Table[Any], ...] = (RUNS, TASKS, ATTEMPTS, EVENTS, CONTROLS, PREDICTIONS)
