"""Reading YAML text into a node tree that keeps every value's line and column, with
limits (size, aliases, depth) and located problems: the ground the plan loader walks.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml
from yaml.events import AliasEvent, Event, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from limitless.errors import PlanError, Problem
from limitless.plan.model import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_PLAN_BYTES,
    MAX_REGEX_CHARS,
    MAX_VALUES,
    T,
)
from limitless.programs.profiles import (
    BUILTIN_PROFILES,
    PLACEHOLDERS,
    AgentProfile,
    unknown_placeholders,
)


def _file_error(source: str, message: str, line: int = 1, column: int = 1) -> PlanError:
    return PlanError([Problem(source, line, column, message)])


def _read_plan_bytes(path: Path, source: str) -> bytes:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_PLAN_BYTES + 1)
    except FileNotFoundError:
        msg = "plan file not found; write one with `limitless init` or name another file"
        raise _file_error(source, msg) from None
    except IsADirectoryError:
        raise _file_error(source, "this is a folder; name the plan file inside it") from None
    except OSError as exc:
        raise _file_error(source, f"cannot read the plan file: {exc.strerror}") from None
    if len(data) > MAX_PLAN_BYTES:
        raise _file_error(source, _too_big("the plan")) from None
    return data


def _too_big(what: str) -> str:
    return f"{what} is larger than 1 MiB ({MAX_PLAN_BYTES} bytes); make it smaller"


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        msg = f"the plan is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8"
        raise _file_error(source, msg, line, column) from None


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character `index` in `text`."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


# Composing YAML safely


class _Position(Protocol):
    """Where a YAML event or node starts (0-based); pyyaml has two Mark classes."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


class _Refused(Exception):
    """Raised while composing YAML that could hang or exhaust memory if walked."""

    def __init__(self, mark: _Position | None, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """A SafeLoader that refuses alias bombs, recursive aliases and very deep nesting.

    Aliases share nodes, so composing is cheap; it is walking the tree that would
    multiply. So values are counted as they are composed, an alias counting every
    value it stands for, and composing stops as soon as the count passes MAX_VALUES.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._aliases = 0
        self._depth = 0
        self._values = 0
        self._open_anchors: set[str] = set()
        self._sizes: dict[int, int] = {}  # id(anchored node) -> values it holds

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = typing.cast(Callable[[], Event], self.peek_event)()
        if isinstance(event, AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                msg = f"more than {MAX_ALIASES} YAML aliases; write the values out instead"
                raise _Refused(event.start_mark, msg)
            if event.anchor in self._open_anchors:
                msg = (
                    f"YAML alias *{event.anchor} is inside the value it names; aliases cannot loop"
                )
                raise _Refused(event.start_mark, msg)
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), event)
            return node
        if self._depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"the plan nests more than {MAX_DEPTH} levels deep")
        self._count(1, event)
        before = self._values
        anchor = event.anchor if isinstance(event, NodeEvent) else None
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)
        if anchor is not None:
            self._sizes[id(node)] = self._values - before + 1
        return node

    def _count(self, values: int, event: Event) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            msg = (
                f"the plan holds more than {MAX_VALUES} values (an alias counts each time "
                "it is used); make it smaller"
            )
            raise _Refused(event.start_mark, msg)


def _compose(text: str, source: str) -> tuple[Node | None, _Loader]:
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(text, source, exc) from None
    try:
        return loader.get_single_node(), loader
    except _Refused as exc:
        raise PlanError([_problem(source, exc.mark, exc.message)]) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(text, source, exc) from None
    except yaml.MarkedYAMLError as exc:
        details = ", ".join(part for part in (exc.context, exc.problem) if part)
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            mark = exc.context_mark  # where the unclosed quote or bracket opened, not the end
        raise PlanError([_problem(source, mark, f"YAML syntax error: {details}")]) from None
    except yaml.YAMLError as exc:
        raise _file_error(source, f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()


def _reader_error(text: str, source: str, exc: yaml.reader.ReaderError) -> PlanError:
    line, column = _position(text, exc.position)
    character = exc.character if isinstance(exc.character, int) else 0
    msg = f"the plan holds the character U+{character:04X}, which YAML does not allow; remove it"
    return _file_error(source, msg, line, column)


class SourceMark(yaml.Mark):
    """The mark of a value that came from another file than the plan (the user config's
    defaults): a problem with it names that file."""

    def __init__(self, source: str) -> None:
        super().__init__(source, 0, 0, 0, None, 0)  # no buffer to show
        self.source = source


def _problem(source: str, mark: _Position | None, message: str) -> Problem:
    if mark is None:
        return Problem(source, 1, 1, message)
    if isinstance(mark, SourceMark):
        return Problem(mark.source, 1, 1, message)
    return Problem(source, mark.line + 1, mark.column + 1, message)


def add_defaults(root: Node | None, defaults: Mapping[str, str], source: str) -> None:
    """Give the plan's top-level mapping `defaults` for the keys it leaves out, as nodes
    marked as coming from `source` (the plan's own keys win)."""
    if not defaults or not isinstance(root, MappingNode):
        return
    present = {key.value for key, _ in root.value if isinstance(key, ScalarNode)}
    mark = SourceMark(source)
    for key, value in defaults.items():
        if key in present:
            continue
        key_node = ScalarNode("tag:yaml.org,2002:str", key, mark, mark)
        root.value.append((key_node, ScalarNode("tag:yaml.org,2002:str", value, mark, mark)))


# Small wording helpers


def _show(value: str) -> str:
    """`value` quoted for a message, shortened when long."""
    return repr(value if len(value) <= 40 else value[:39] + "…")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown(
    what: str,
    value: str,
    choices: Sequence[str],
    *,
    list_all: bool = False,
    label: str = "accepted",
) -> str:
    """'unknown key 'x'; did you mean 'y'?' with the accepted choices when nothing is close."""
    message = f"unknown {what} {_show(value)}"
    close = difflib.get_close_matches(value, choices, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    if list_all or not close:
        shown = list(choices[:20]) + (["…"] if len(choices) > 20 else [])
        message += f" ({label}: {', '.join(shown)})"
    return message


_ID_CHARS = re.compile(r"[A-Za-z0-9._-]")
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{n}" for n in range(1, 10)}
    | {f"LPT{n}" for n in range(1, 10)}
)


def _id_problem(value: str) -> str | None:
    """Why `value` cannot be an id (ids become git branch and folder names), or None."""
    if not value:
        return "is empty"
    if not (value[0].isascii() and value[0].isalnum()):
        return "must start with a letter or digit"
    bad = next((char for char in value if not _ID_CHARS.fullmatch(char)), None)
    if bad is not None:
        return f"contains {bad!r}; use letters, digits, '.', '_' and '-' only"
    if len(value) > 64:
        return "is longer than 64 characters"
    if ".." in value:
        return "contains '..', which git refuses in branch names"
    if value.endswith(".lock"):
        return "ends in '.lock', which git refuses in branch names"
    if value.endswith("."):
        return "ends in '.', which git refuses in branch names"
    device = value.split(".", 1)[0].upper()
    if device in _WINDOWS_DEVICES:
        return f"names the Windows device {device}, which cannot be a folder name"
    return None


_BAD_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^[-/.]|/\.|[/.]$|\.lock$|^@$")

_DURATION = re.compile(
    r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?"
)
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def _parse_duration(text: str) -> float | None:
    """Seconds in `90`, `90s`, `30m`, `2h`, `1h30m` or `1.5h`; None if it is none of those."""
    if _SECONDS.fullmatch(text):
        return float(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        return None
    hours, minutes, seconds = (float(match.group(g) or 0) for g in ("h", "m", "s"))
    return hours * 3600 + minutes * 60 + seconds


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"  # a plain `<<`
_VALUE = "tag:yaml.org,2002:value"  # a plain `=`
_TEXT_TAGS = (_STR, _INT, _FLOAT, _TIMESTAMP, _MERGE, _VALUE)
_KINDS = {
    _STR: "a string",
    _INT: "a whole number",
    _FLOAT: "a number",
    _BOOL: "a boolean",
    _NULL: "nothing (null)",
    _TIMESTAMP: "a date",
}


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _KINDS.get(node.tag, f"a value tagged {node.tag}")


def _number(node: Node) -> str:
    """A number as written in the file, shortened when long."""
    text = str(node.value)
    return text if len(text) <= 20 else text[:19] + "…"


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


# The node walker


@dataclass
class _Reader:
    """Walks the YAML node tree; every check that fails adds a Problem and reading goes on."""

    source: str
    base_dir: Path
    loader: _Loader
    problems: list[Problem] = field(default_factory=list)
    profiles: dict[str, AgentProfile] = field(default_factory=lambda: dict(BUILTIN_PROFILES))
    """Agent profiles known before the plan's own `agents:` section."""

    def fail(self, node: Node, path: str, message: str) -> None:
        text = f"{path}: {message}" if path else message
        self.problems.append(_problem(self.source, node.start_mark, text))

    def wrong_type(self, node: Node, path: str, expected: str) -> None:
        self.fail(node, path, f"expected {expected}, got {_kind(node)}")

    def items(self, node: Node, path: str) -> list[tuple[str, Node, Node]] | None:
        """A mapping's (key, key node, value node) triples; duplicate keys are problems."""
        if not isinstance(node, MappingNode):
            self.wrong_type(node, path, "a mapping")
            return None
        seen: dict[str, Node] = {}
        result: list[tuple[str, Node, Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, path, f"a key must be a plain name, not {_kind(key_node)}")
                continue
            key = str(key_node.value)
            if key_node.tag == _MERGE:
                self.fail(
                    key_node, path, "YAML merge keys (<<) are not supported; write the keys out"
                )
                continue
            if key in seen:
                first = seen[key].start_mark
                where = f"line {first.line + 1}" if first else "earlier"
                self.fail(
                    key_node, path, f"duplicate key {_show(key)}; the first one is at {where}"
                )
                continue
            seen[key] = key_node
            result.append((key, key_node, value_node))
        return result

    def section(
        self, node: Node | None, path: str, allowed: Sequence[str], what: str = "key"
    ) -> _Section | None:
        """The values of a mapping whose keys must be among `allowed`."""
        if node is None:
            return _Section(self, path, None, {})
        triples = self.items(node, path)
        if triples is None:
            return None
        values: dict[str, Node] = {}
        for key, key_node, value_node in triples:
            if key not in allowed:
                self.fail(key_node, path, _unknown(what, key, allowed))
            else:
                values[key] = value_node
        return _Section(self, path, node, values)

    def sequence(self, node: Node, path: str, expected: str) -> list[Node] | None:
        if isinstance(node, SequenceNode):
            return list(node.value)
        self.wrong_type(node, path, expected)
        return None

    def text(self, node: Node, path: str, *, empty_ok: bool = False) -> str | None:
        """A string value; numbers and dates are taken as the text written in the file."""
        if not isinstance(node, ScalarNode) or node.tag not in _TEXT_TAGS:
            hint = (
                " (put it in quotes if it is text)" if _is_null(node) or node.tag == _BOOL else ""
            )
            self.wrong_type(node, path, "a string" + hint)
            return None
        value = str(node.value)
        if "\0" in value:
            self.fail(node, path, "contains a NUL character, which no program can receive")
            return None
        if not value.strip() and not empty_ok:
            self.fail(node, path, "must not be empty")
            return None
        return value

    def texts(self, node: Node, path: str) -> tuple[str, ...]:
        """One string or a list of strings."""
        if isinstance(node, ScalarNode) and not _is_null(node) and node.tag != _BOOL:
            value = self.text(node, path)
            return () if value is None else (value,)
        items = self.sequence(node, path, "a string or a list of strings")
        if items is None:
            return ()
        values = (self.text(item, f"{path}[{i}]") for i, item in enumerate(items))
        return tuple(value for value in values if value is not None)

    def integer(self, node: Node, path: str, low: int, high: int) -> int | None:
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            self.wrong_type(node, path, "a whole number")
            return None
        try:
            value = self.loader.construct_yaml_int(node)
        except ValueError:
            value = high + 1
        if not low <= value <= high:
            self.fail(
                node,
                path,
                f"{_number(node)} is out of range; use a whole number from {low} to {high}",
            )
            return None
        return value

    def number(self, node: Node, path: str, low: float, high: float | None) -> float | None:
        """A finite number from `low` to `high`, or above `low` when `high` is None."""
        if not isinstance(node, ScalarNode) or node.tag not in (_INT, _FLOAT):
            self.wrong_type(node, path, "a number")
            return None
        try:
            value = float(self.loader.construct_yaml_float(node))
        except (ValueError, OverflowError):
            value = math.inf
        in_range = value > low if high is None else low <= value <= high
        if not (math.isfinite(value) and in_range):
            accepted = f"above {low:g}" if high is None else f"from {low:g} to {high:g}"
            self.fail(node, path, f"{_number(node)} is out of range; use a number {accepted}")
            return None
        return value

    def flag(self, node: Node, path: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            self.wrong_type(node, path, "true or false")
            return None
        return self.loader.construct_yaml_bool(node)

    def duration(self, node: Node, path: str) -> float | None:
        accepted = "a number of seconds or a duration like 90s, 30m, 2h or 1h30m"
        if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT, _FLOAT):
            self.wrong_type(node, path, accepted)
            return None
        seconds = _parse_duration(str(node.value))
        if seconds is None or not math.isfinite(seconds):
            self.fail(node, path, f"bad duration {_show(node.value)}; use {accepted}")
            return None
        if seconds <= 0:
            self.fail(node, path, f"{_show(node.value)} is no time at all; use a duration above 0")
            return None
        return seconds

    def env(self, node: Node, path: str) -> dict[str, str]:
        triples = self.items(node, path) if not _is_null(node) else []
        result: dict[str, str] = {}
        for name, key_node, value_node in triples or []:
            if not _ENV_NAME.fullmatch(name):
                self.fail(
                    key_node,
                    path,
                    f"{_show(name)} is not an environment variable name; use letters, digits "
                    "and '_', not starting with a digit",
                )
            value = self.text(value_node, _join(path, name), empty_ok=True)
            if value is not None:
                result[name] = value
        return result

    def ident(self, node: Node, path: str, label: str) -> str | None:
        """A task id, epic or stage name, which must be safe as a git branch and folder name.

        An unsafe one is a problem but still returned, so that references to it
        are not reported as unknown too.
        """
        value = self.text(node, path, empty_ok=True)
        reason = None if value is None else _id_problem(value)
        if value is not None and reason is not None:
            self.fail(node, path, f"{label} {_show(value)} {reason}")
        return value

    def known(self, node: Node, path: str, name: str, choices: Sequence[str], what: str) -> None:
        if name not in choices:
            self.fail(
                node, path, _unknown(what, name, sorted(choices), list_all=True, label="known")
            )


@dataclass
class _Section:
    """A checked mapping: typed getters that fall back to a default after a problem."""

    reader: _Reader
    path: str
    node: Node | None
    values: dict[str, Node]

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def get(self, key: str) -> Node | None:
        """The value of `key`; None when it is missing or null (`key:` with nothing after)."""
        node = self.values.get(key)
        return None if node is None or _is_null(node) else node

    def _read(self, key: str, default: T, read: Callable[[Node, str], T | None]) -> T:
        node = self.get(key)
        if node is None:
            return default
        value = read(node, self.at(key))
        return default if value is None else value

    def text(self, key: str, default: str) -> str:
        return self._read(key, default, self.reader.text)

    def optional_text(self, key: str) -> str | None:
        node = self.get(key)
        if node is None or _is_null(node):
            return None
        return self.reader.text(node, self.at(key))

    def texts(self, key: str) -> tuple[str, ...]:
        return self._read(key, (), self.reader.texts)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        return self._read(key, default, lambda n, p: self.reader.integer(n, p, low, high))

    def number(self, key: str, default: float, low: float, high: float | None) -> float:
        return self._read(key, default, lambda n, p: self.reader.number(n, p, low, high))

    def optional_number(self, key: str, low: float, high: float | None) -> float | None:
        node = self.get(key)
        if node is None or _is_null(node):
            return None
        return self.reader.number(node, self.at(key), low, high)

    def flag(self, key: str, default: bool) -> bool:
        return self._read(key, default, self.reader.flag)

    def duration(self, key: str) -> float | None:
        node = self.get(key)
        return None if node is None else self.reader.duration(node, self.at(key))

    def env(self, key: str, default: Mapping[str, str]) -> Mapping[str, str]:
        node = self.get(key)
        return default if node is None else self.reader.env(node, self.at(key))

    def choice(self, key: str, default: T, options: Mapping[str, T]) -> T:
        node = self.get(key)
        if node is None:
            return default
        value = self.reader.text(node, self.at(key))
        if value is None:
            return default
        if value not in options:
            self.reader.fail(
                node, self.at(key), _unknown("value", value, list(options), list_all=True)
            )
            return default
        return options[value]

    def argv(
        self, key: str, default: tuple[str, ...], extra: frozenset[str] = frozenset()
    ) -> tuple[str, ...]:
        """An argv template: a list of strings with known {placeholders} only."""
        node = self.get(key)
        if node is None:
            return default
        path = self.at(key)
        items = self.reader.sequence(node, path, "a list of strings")
        if items is None:
            return default
        if not items and key == "command":
            self.reader.fail(node, path, "must not be empty; give the program and its arguments")
            return default
        parts = [
            self.reader.text(item, f"{path}[{i}]", empty_ok=True) for i, item in enumerate(items)
        ]
        argv = tuple(part for part in parts if part is not None)
        unknown = [name for name in unknown_placeholders(argv) if name not in extra]
        if unknown:
            accepted = ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS | extra))
            self.reader.fail(
                node, path, f"unknown placeholder {{{unknown[0]}}} (accepted: {accepted})"
            )
        return argv

    def regex(self, key: str, default: str | None, *, group: bool) -> str | None:
        """A regular expression that compiles; with `group`, it must capture what it reads."""
        node = self.values.get(key)
        if node is None:
            return default
        if _is_null(node):
            return None
        path = self.at(key)
        pattern = self.reader.text(node, path)
        if pattern is None:
            return default
        if len(pattern) > MAX_REGEX_CHARS:
            self.reader.fail(node, path, f"longer than {MAX_REGEX_CHARS} characters; shorten it")
            return default
        try:
            compiled = re.compile(pattern)
        except (re.error, OverflowError) as exc:
            self.reader.fail(node, path, f"not a valid regular expression: {exc}")
            return default
        except RecursionError:  # the parser of `re` recurses once per nested group
            self.reader.fail(node, path, "not a valid regular expression: nested too deeply")
            return default
        if group and compiled.groups < 1:
            self.reader.fail(node, path, "needs a (group) around the value it reads")
            return default
        return pattern

    def require(self, key: str, message: str) -> Node | None:
        node = self.get(key)
        if node is None and self.node is not None:
            self.reader.fail(self.node, self.path, message)
        return node


# Building the plan from the nodes
