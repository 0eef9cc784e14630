"""Reading untrusted values: a YAML file, or a Marketplace folder of one file per key.

The values come from a user or from the Marketplace form, so every limit is checked before the
document is built in full: the size is known before reading, the encoding before parsing, and
the YAML events are turned into Python objects here (libyaml parses, this composer builds)
so that an anchor, an alias, a nesting past ``MAX_DEPTH``, too many nodes, a key that is not a
string or a key given twice is refused at the event where it appears. A 300-byte alias bomb
or a map nested 3,000 deep therefore costs nothing, and every refusal names the key and
the line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml._yaml import CParser
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import Resolver

from deployer.errors import ValuesError

MAX_BYTES = 1024 * 1024
"""The largest values file (and the largest values folder, all files together): the form's
values fit in a few kilobytes."""
MAX_DEPTH = 32
"""The deepest nesting of mappings and lists (the chart's deepest value is 5 levels down)."""
MAX_NODES = 50_000
"""The most scalars, lists and mappings in one document."""
MAX_FOLDER_FILES = 1_000
"""The most files in a values folder (one per key; the form has a few dozen)."""
SHOWN_KEY_CHARS = 80
"""How much of a key a message quotes."""

_STRING_TAG = "tag:yaml.org,2002:str"
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""Characters no YAML text holds (tab and line breaks are fine)."""
CONTROL_OR_LINE_BREAK = re.compile("[\x00-\x1f\x7f]")
"""Characters no single-line value holds."""
# Tags a value may carry (None: untagged, "!": a quoted or non-plain scalar); anything else
# (!!binary, !!timestamp, !!set, !!python/..., custom tags) is refused at its key.
_PLAIN_TAGS = {None, "!"} | {
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")
}


def shown(text: str, limit: int = SHOWN_KEY_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def _read_limited(path: Path, limit: int, too_large: str) -> bytes:
    """The file's bytes; no more than ``limit`` + 1 are read, and then ``too_large`` says
    what is wrong."""
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except OSError as exc:
        raise ValuesError([f"cannot read the values file {path}: {exc.strerror}"]) from exc
    if len(data) > limit:
        raise ValuesError([too_large])
    return data


def _near(text_before: str) -> str:
    """``near KEY`` for the key written on the line where ``text_before`` ends, if any."""
    line = text_before.rpartition("\n")[2]
    key, colon, _ = line.partition(":")
    key = key.strip().lstrip("-").strip()
    return f" near {shown(key)!r}" if colon and key else ""


def _decode(data: bytes, source: str) -> str:
    """UTF-8 text without control characters other than tab and line breaks."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8-sig", errors="replace")
        line = before.count("\n") + 1
        raise ValuesError(
            [
                f"{source} is not UTF-8 text: byte {exc.start:,} on line {line}{_near(before)}; "
                "save it as UTF-8"
            ]
        ) from None
    control = _CONTROL.search(text)
    if control:
        index = control.start()
        line = text.count("\n", 0, index) + 1
        raise ValuesError(
            [
                f"{source} holds the control character {control.group()!r} on line {line}"
                f"{_near(text[:index])}: it looks binary; a values file is YAML text"
            ]
        )
    return text


class _BoundedLoader(CParser, Composer, SafeConstructor, Resolver):
    """libyaml's parser (fast, no recursion) feeding PyYAML's composer with the limits of this
    module, then PyYAML's safe constructor: only plain data comes out. The composer keeps the
    path of keys it is in, so that every refusal names the key."""

    def __init__(self, text: str, source: str, key: str) -> None:
        CParser.__init__(self, text)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._source = source
        self._path: list[str] = [key] if key else []
        self._nodes = 0
        self._keys: dict[int, set[str]] = {}

    # libyaml's parser composes too; PyYAML's composer, bounded below, must be the one to run.
    get_single_node = Composer.get_single_node
    check_node = Composer.check_node
    get_node = Composer.get_node

    def where(self, line: int) -> str:
        """The key being read and the line, for a message."""
        key = "".join(self._path).lstrip(".") or "(top level)"
        return f"{shown(key)} (line {line + 1} of {self._source})"

    def _refuse(self, problem: str, line: int) -> NoReturn:
        raise ValuesError([f"{self.where(line)}: {problem}"])

    def _step(self, parent: Node | None, index: Any, line: int) -> str:
        """The path element of the node about to be composed, refusing a key that is not a
        string or that its mapping already holds. Composer passes a mapping's key node as the
        index of its value, and a list's position as the index of its item."""
        if isinstance(index, int):
            return f"[{index}]"
        if not isinstance(parent, MappingNode) or index is None:
            return ""  # the document, or a key itself
        if not isinstance(index, ScalarNode) or index.tag != _STRING_TAG:
            text = index.value if isinstance(index, ScalarNode) else "[a list or mapping]"
            self._refuse(
                f"the key {shown(str(text))!r} is not a string: keys are names; quote a name "
                'YAML reads as a number or a boolean ("on", "yes", "1")',
                line,
            )
        name = str(index.value)
        self._path.append(f".{name}")
        seen = self._keys.setdefault(id(parent), set())
        if name in seen:
            self._refuse("given twice in the same mapping: keep one", line)
        seen.add(name)
        self._path.pop()
        return f".{name}"

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        try:
            event = self.peek_event()
        except yaml.YAMLError:
            # A syntax error in a mapping's value: the message names the key it belongs to.
            if isinstance(index, ScalarNode):
                self._path.append(f".{index.value}")
            raise
        line = event.start_mark.line if event and event.start_mark else 0
        step = self._step(parent, index, line)
        # Kept on error (no `finally`): the message names where it happened.
        self._path.append(step)
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            self._refuse(
                "YAML anchors and aliases (&name, *name) are not accepted: write each value out",
                line,
            )
        if getattr(event, "tag", None) not in _PLAIN_TAGS:
            self._refuse(
                f"the tag {shown(str(getattr(event, 'tag', '')))} is not accepted: values are "
                "plain strings, numbers, booleans, lists and mappings",
                line,
            )
        if len(self._path) > MAX_DEPTH:
            self._refuse(f"nested more than {MAX_DEPTH} levels deep: no value is that deep", line)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            self._refuse(f"more than {MAX_NODES:,} values in one file", line)
        node = super().compose_node(parent, index)
        if node is None:  # PyYAML's composer returns a node for every event it accepts
            self._refuse("not a value", line)
        self._path.pop()
        return node


def parse_values_text(text: str, source: str, key: str = "") -> Any:
    """One YAML document of plain data, within the limits of this module; ``key`` names the
    value the whole document is (a file of a values folder)."""
    loader = _BoundedLoader(text, source, key)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line if exc.problem_mark else 0
        problem = ", ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ValuesError(
            [f"{loader.where(line)}: not valid YAML: {shown(problem, 200)}"]
        ) from None
    except yaml.YAMLError as exc:
        raise ValuesError([f"{source} is not valid YAML: {shown(str(exc), 200)}"]) from None
    finally:
        loader.dispose()


def read_values_file(path: Path) -> dict[str, Any]:
    """The values in a YAML file (the Marketplace's ``values.yaml`` or ``--values FILE``)."""
    too_large = (
        f"{path} is larger than {MAX_BYTES:,} bytes: a values file holds the form's values, "
        "a few kilobytes; check that this is the right file"
    )
    text = _decode(_read_limited(path, MAX_BYTES, too_large), str(path))
    document = parse_values_text(text, str(path))
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValuesError([f"{path} must be a YAML mapping of keys to values"])
    return document


def read_values_folder(path: Path, string_keys: frozenset[str]) -> dict[str, Any]:
    """Values the way GKE Marketplace mounts them: a ConfigMap at ``/data/values``, one file
    per key. A key in ``string_keys`` keeps its text as is (a tag ``1.10`` stays a string);
    other values are read as YAML (scalars, lists or mappings) within the same limits."""
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        raise ValuesError([f"cannot read the values folder {path}: {exc.strerror}"]) from exc
    # ConfigMap volumes hold `..data` and timestamped folders next to the key files.
    files = [f for f in entries if not f.name.startswith(".") and f.is_file()]
    if len(files) > MAX_FOLDER_FILES:
        raise ValuesError(
            [
                f"{path} holds {len(files):,} files, one per key; the form has far fewer: "
                "check that this is the values folder"
            ]
        )
    found: dict[str, Any] = {}
    budget = MAX_BYTES
    for file in files:
        source = f"{path}/{shown(file.name)}"
        too_large = (
            f"{shown(file.name)}: the files of {path} hold more than {MAX_BYTES:,} bytes "
            "together: the form's values are a few kilobytes; check that this is the right folder"
        )
        data = _read_limited(file, budget, too_large)
        budget -= len(data)
        text = _decode(data, source)
        found[file.name] = (
            text if file.name in string_keys else parse_values_text(text, source, file.name)
        )
    return found
