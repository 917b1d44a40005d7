"""Typed reading of untrusted YAML values: every getter knows its path, and unknown fields are errors.

One small module shared by the legacy ConfigMap parser, the CRD parsers and the Service reader. Every
mistake becomes a ConfigError whose message starts with the object (`Where`) and the field path, so a parser
never has to format an error by hand or catch a KeyError/TypeError.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
from typing import NoReturn

import yaml

from metallb_py.errors import ConfigError

__all__ = ["Reader", "Where", "check_range", "describe", "load_yaml_documents", "quote"]


def quote(text: str) -> str:
    """A string in double quotes with escapes, the way every message here shows names and values."""
    return json.dumps(text, ensure_ascii=False)


def describe(value: object) -> str:
    """What a YAML value is, for "expected X, got Y" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({quote(shown)})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, _dt.datetime | _dt.date):
        return "a timestamp"
    if isinstance(value, bytes):
        return "binary data"
    return f"a {type(value).__name__}"


class Where:
    """The object an error is about, e.g. `IPAddressPool "blue" (pools.yaml, document 2)`.

    `notes` collects what reading found acceptable but worth a warning, as (problem, what was done) pairs
    worded like errors; the loader turns them into warnings (or, when strict, into the first error).
    """

    __slots__ = ("notes", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.notes: list[tuple[str, str]] = []

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.text}: {path}: {message}" if path else f"{self.text}: {message}")

    def fail(self, path: str, message: str) -> NoReturn:
        raise self.error(path, message)

    def note(self, path: str, problem: str, done: str) -> None:
        """Accept, but warn: `problem` at `path` (worded as an error would be), and what was `done`."""
        self.notes.append((str(self.error(path, problem)), done))

    def __repr__(self) -> str:
        return f"Where({self.text!r})"


def _check_text(where: Where, path: str, text: str) -> str:
    # YAML escapes can produce lone surrogates, which no encoder (and not the Rust core) accepts.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        where.fail(path, "text is not valid Unicode (lone surrogate escape)")
    return text


class Reader:
    """A mapping being read. Getters mark keys as known; `finish()` rejects the keys nobody asked for.

    `null` counts as absent, as in Kubernetes. Paths join with `sep` ("." for CRDs, ": " after a named legacy
    item, so messages read `address-pools[0] "web": protocol`).
    """

    def __init__(self, value: object, where: Where, path: str = "", *, sep: str = ".") -> None:
        if not isinstance(value, dict):
            where.fail(path, f"expected a mapping, got {describe(value)}")
        for key in value:
            if not isinstance(key, str):
                where.fail(path, f"field names must be strings, got {describe(key)}")
            _check_text(where, path, key)
        self.where = where
        self.path = path
        self.sep = sep
        self._data: dict[str, object] = value
        self._asked: set[str] = set()

    # -- paths ---------------------------------------------------------------------------------------------

    def path_of(self, key: str) -> str:
        return f"{self.path}{self.sep}{key}" if self.path else key

    def named(self, name: str) -> Reader:
        """The same mapping, with its name in the path: `address-pools[0] "web": field`."""
        named = Reader.__new__(Reader)
        named.where, named._data, named._asked = self.where, self._data, self._asked
        named.path = f"{self.path} {quote(name)}"
        named.sep = ": "
        return named

    def error(self, key: str, message: str) -> ConfigError:
        return self.where.error(self.path_of(key), message)

    def fail(self, key: str, message: str) -> NoReturn:
        raise self.error(key, message)

    # -- getters -------------------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        self._asked.add(key)
        return self._data.get(key) is not None

    def raw(self, key: str) -> object:
        self._asked.add(key)
        return self._data.get(key)

    def ignore(self, *keys: str) -> None:
        self._asked.update(keys)

    def missing(self, key: str) -> NoReturn:
        """Fail for a missing required field, pointing at a misspelt one when there is one."""
        unknown = [k for k in self._data if k not in self._asked and k != key]
        hint = difflib.get_close_matches(key, unknown, n=1)
        found = f" (found unknown field {quote(hint[0])}; a typo?)" if hint else ""
        self.fail(key, f"required field is missing{found}")

    def text(self, key: str, *, required: bool = False, allow_empty: bool = True) -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                self.missing(key)
            return None
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {describe(value)}")
        _check_text(self.where, self.path_of(key), value)
        if not value and (required or not allow_empty):
            self.fail(key, "must not be empty")
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key, required=True)
        assert value is not None
        return value

    def flag(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {describe(value)}")
        return value

    def number(self, key: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        # bool is an int subclass in Python, but `true` is no number in a manifest.
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, f"expected an integer, got {describe(value)}")
        check_range(self.where, self.path_of(key), value, minimum, maximum)
        return value

    def items(self, key: str) -> list[tuple[str, object]]:
        """The items of a list field with their paths (`key[i]`); absent is empty."""
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, f"expected a list, got {describe(value)}")
        base = self.path_of(key)
        return [(f"{base}[{i}]", item) for i, item in enumerate(value)]

    def texts(self, key: str, *, allow_empty_items: bool = False) -> list[str]:
        result = []
        for path, item in self.items(key):
            if not isinstance(item, str):
                self.where.fail(path, f"expected a string, got {describe(item)}")
            _check_text(self.where, path, item)
            if not item and not allow_empty_items:
                self.where.fail(path, "must not be empty")
            result.append(item)
        return result

    def mappings(self, key: str, *, sep: str = ".") -> list[Reader]:
        """A list of mappings, each as a Reader with its own path."""
        return [Reader(item, self.where, path, sep=sep) for path, item in self.items(key)]

    def mapping(self, key: str, *, required: bool = False) -> Reader | None:
        value = self.raw(key)
        if value is None:
            if required:
                self.missing(key)
            return None
        return Reader(value, self.where, self.path_of(key))

    def text_map(self, key: str) -> dict[str, str]:
        """A mapping of strings to strings (labels, annotations, selectors)."""
        sub = self.mapping(key)
        if sub is None:
            return {}
        result = {}
        for name, value in sub._data.items():
            if not isinstance(value, str):
                sub.fail(name, f"expected a string, got {describe(value)}")
            result[name] = _check_text(self.where, sub.path_of(name), value)
        sub.ignore(*result)
        return result

    # -- the end -------------------------------------------------------------------------------------------

    def finish(self) -> None:
        """Reject every field no getter asked for, naming it and the closest known field."""
        for key in self._data:
            if key not in self._asked:
                hint = difflib.get_close_matches(key, sorted(self._asked), n=1)
                known = f"; did you mean {quote(hint[0])}?" if hint else ""
                self.fail(key, f"unknown field{known}")


def check_range(where: Where, path: str, value: int, minimum: int | None, maximum: int | None) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if minimum is not None and maximum is not None:
            where.fail(path, f"{value} is out of range; expected {minimum} to {maximum}")
        if minimum is not None:
            where.fail(path, f"{value} is too small; expected at least {minimum}")
        where.fail(path, f"{value} is too large; expected at most {maximum}")


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, minus its habit of letting a repeated key silently win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            # Merge keys (`<<`) legitimately repeat fields; only plain scalar keys are compared.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Every way PyYAML (and the constructors it calls, e.g. datetime for `2020-13-01`) reports a bad document.
_YAML_FAILURES = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError)


def load_yaml_documents(text: str, where: Where, path: str = "") -> list[object]:
    """All documents of a YAML stream, or a ConfigError naming `where` and the line of the mistake."""
    if not isinstance(text, str):
        where.fail(path, f"expected YAML text, got {describe(text)}")
    _check_text(where, path, text)
    try:
        return list(yaml.load_all(text, Loader=_StrictLoader))
    except _YAML_FAILURES as exc:
        where.fail(path, f"invalid YAML: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "malformed"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        return " ".join(f"{at}{problem}{context}".split())
    return " ".join(str(exc).split()) or type(exc).__name__
