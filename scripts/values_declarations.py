"""What chart/values.yaml declares, read: each value's default, its `# --` description and its
constraints as `@` tags, the sections that hold them and the `@define`d types (from which
scripts/chart_values.py writes the schema and the table).

The comments, helm-docs style, extended with tags:

    # -- GPUs per Triton pod (`nvidia.com/gpu` limit); 0 runs on CPU nodes
    # @minimum 0 @maximum 16
    count: 1

- A `# --` comment (continued by `#` lines) right above a key documents it: a row of the table,
  and the `description` of its schema. Tags follow the description, on lines of their own.
- `@KEYWORD VALUE` is a JSON-schema keyword (`@enum`, `@minimum`, `@maxLength`, `@items`,
  `@if`/`@then`...) with a YAML value (`[a, b]`, `3`, `{pattern: '^gs://'}`); several may share
  a line. `@pattern` takes the rest of its line as it is written (no quoting), so it comes last.
  A tag with nothing after it takes the YAML block of the comment lines below it that are
  indented further.
- `@type` is a JSON type, or the name of a type declared with `@define NAME VALUE` in a comment
  block of its own (the head of values.yaml); written anywhere in a value, `type: NAME` refers
  to it. Without `@type` the type is the default's.
- `@required` (no value): the key must be present in its parent.
- A map without a `# --` comment is a section: each key inside is declared on its own, and the
  section refuses keys it does not declare. A documented map is one value (one row).

A key that is neither documented nor a section, an unknown tag, a tag value that is not YAML or
a `@define` that is malformed is an error naming the line and what to write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

JSON_TYPES: Final = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})
KEYWORDS: Final = (
    "type",
    "enum",
    "const",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "properties",
    "additionalProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "if",
    "then",
    "else",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "required",
)
"""The tags a value may carry: JSON-schema keywords (draft 7), `@required` a flag."""
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_-]+):(?P<rest>.*)$")
_TAG = re.compile(r"@(?P<name>[A-Za-z]+)(?=\s|$)")
_NEXT_TAG = re.compile(r"(?:^|\s)@(?=[A-Za-z]+(?:\s|$))")


class DeclarationError(ValueError):
    """values.yaml declares something this generator cannot read; the message names the line."""


@dataclass
class Declaration:
    """One documented value of values.yaml."""

    key: str
    """Dotted path, e.g. `image.tag`."""
    default: Any
    description: str
    """The `# --` comment, joined into one line."""
    line: int
    """Where its key is (1-based)."""
    tags: dict[str, Any] = field(default_factory=dict)
    """Its JSON-schema keywords, as written (a `type` may name a declared type)."""
    required: bool = False


@dataclass
class Chart:
    """What values.yaml declares."""

    values: list[Declaration]
    sections: list[str]
    """Dotted paths of the maps whose keys are declared one by one, in file order."""
    definitions: dict[str, dict[str, Any]]
    """The `@define` types, as written."""


@dataclass
class _Block:
    """A comment block being read: a `# --` description and its tags, or a `@define`."""

    first_line: int
    description: list[str] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)
    lines: list[tuple[int, str]] = field(default_factory=list)
    """The tag lines and what follows them, (line number, text after `#`)."""


def where(line: int) -> str:
    """A line of values.yaml, as the errors name it."""
    return f"values.yaml:{line}"


def _tag_value(name: str, text: str, line: int) -> Any:
    if name == "pattern":
        try:
            re.compile(text)
        except re.error as exc:
            raise DeclarationError(
                f"{where(line)}: @pattern {text!r} is not a regular expression ({exc}); write "
                "it as JSON schema reads it, unquoted, as the last tag of its line"
            ) from exc
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise DeclarationError(
            f"{where(line)}: @{name} {text!r} is not YAML ({problem}); write a YAML value, "
            "such as 3, [a, b] or {pattern: '^x'} (quote a regular expression in single quotes)"
        ) from exc


def _read_tags(lines: list[tuple[int, str]]) -> dict[str, Any]:
    """Tags from the lines after a description: `@name value` pairs, or a `@name` with the
    indented YAML block under it."""
    tags: dict[str, Any] = {}
    index = 0
    while index < len(lines):
        number, text = lines[index]
        column = _indent(text)
        rest = text.strip()
        if not rest.startswith("@"):
            raise DeclarationError(
                f"{where(number)}: {rest!r} follows the tags; write the whole description "
                "first and the `@` tags after it"
            )
        while rest:
            matched = _TAG.match(rest)
            if matched is None:
                raise DeclarationError(
                    f"{where(number)}: {rest!r} is not a tag; write `@KEYWORD VALUE`"
                )
            name = matched["name"]
            if name not in KEYWORDS:
                raise DeclarationError(
                    f"{where(number)}: unknown tag @{name}; write one of "
                    f"{', '.join('@' + k for k in KEYWORDS)}"
                )
            if name in tags:
                raise DeclarationError(f"{where(number)}: @{name} is given twice; keep one")
            rest = rest[matched.end() :].lstrip()
            if name == "pattern":
                value_text, rest = rest, ""
            else:
                following = _NEXT_TAG.search(rest)
                value_text = rest[: following.start()].strip() if following else rest
                rest = rest[following.start() :].lstrip() if following else ""
            if name == "required":
                if value_text:
                    raise DeclarationError(
                        f"{where(number)}: @required takes no value; write it alone"
                    )
                tags[name] = True
            elif value_text:
                tags[name] = _tag_value(name, value_text, number)
            else:
                block = []
                while index + 1 < len(lines):
                    following_text = lines[index + 1][1]
                    if _indent(following_text) <= column:
                        break
                    index += 1
                    block.append(following_text)
                if not block:
                    raise DeclarationError(
                        f"{where(number)}: @{name} has no value; write it after the tag, or "
                        "as a YAML block on the comment lines below, indented further"
                    )
                tags[name] = _tag_value(name, "\n".join(block), number)
        index += 1
    return tags


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip())


def _lookup(values: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def _start_definition(
    number: int, inner: str, definitions: dict[str, Any]
) -> tuple[str, _Block, int]:
    """A `@define NAME VALUE` line: the definition's name, its lines (as a `@type` tag, whose
    value is the type) and the column of its `@`."""
    name, _, value = inner.strip().removeprefix("@define").strip().partition(" ")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name):
        raise DeclarationError(
            f"{where(number)}: write `@define NAME VALUE`, NAME a word such as dnsLabel"
        )
    if name in definitions or name in JSON_TYPES:
        raise DeclarationError(
            f"{where(number)}: the type {name} is declared already; choose another name"
        )
    column = inner.index("@define")
    defined = _Block(first_line=number)
    defined.lines.append((number, " " * column + "@type " + value))
    definitions[name] = {}
    return name, defined, column


def parse(text: str) -> Chart:
    """Every declaration of a values.yaml text, in file order."""
    values = yaml.safe_load(text) or {}
    chart = Chart(values=[], sections=[], definitions={})
    undocumented: list[str] = []
    # (indent, key, documented) of the enclosing maps; keys inside a documented map are
    # covered by its row.
    stack: list[tuple[int, str, bool]] = []
    block: _Block | None = None
    definition: tuple[str, _Block, int] | None = None
    """The `@define` being read: its name, its lines, the column of its `@`."""

    def close_definition() -> None:
        nonlocal definition
        if definition is not None:
            name, defined, _ = definition
            value = _read_tags(defined.lines)["type"]
            if not isinstance(value, dict):
                raise DeclarationError(
                    f"{where(defined.first_line)}: @define {name} must be a YAML mapping, "
                    "a JSON schema such as {type: string, pattern: '^x$'}"
                )
            chart.definitions[name] = value
            definition = None

    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("# --"):
            close_definition()
            if block is not None:
                raise DeclarationError(
                    f"{where(block.first_line)}: this `# --` comment documents no key; put it "
                    "right above the key it describes"
                )
            block = _Block(first_line=number, description=[stripped[4:].strip()])
            continue
        if stripped.startswith("#"):
            body = stripped[1:]
            inner = line[line.index("#") + 1 :]
            if block is not None:
                if block.lines or body.strip().startswith("@"):
                    block.lines.append((number, inner))
                else:
                    block.description.append(body.strip())
            elif definition is not None and _indent(inner) > definition[2]:
                definition[1].lines.append((number, inner))
            else:
                close_definition()
                if body.strip().startswith("@define"):
                    definition = _start_definition(number, inner, chart.definitions)
                elif body.strip().startswith("@"):
                    raise DeclarationError(
                        f"{where(number)}: a tag outside a value's comment; put it under the "
                        "`# --` description of the key it constrains"
                    )
            continue
        close_definition()
        match = _KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([*(k for _, k, _ in stack), match["key"]])
        default = _lookup(values, dotted)
        is_map = isinstance(default, dict) and bool(default) and not match["rest"].strip()
        covered = any(documented for _, _, documented in stack)
        if block is not None and not covered:
            declaration = Declaration(dotted, default, " ".join(block.description), number)
            tags = _read_tags(block.lines)
            declaration.required = bool(tags.pop("required", False))
            declaration.tags = tags
            chart.values.append(declaration)
        elif block is not None:
            raise DeclarationError(
                f"{where(block.first_line)}: {dotted} is inside the documented map "
                f"{'.'.join(k for _, k, _ in stack)}, which is one value: document the map's "
                "keys in its comment, or remove the map's `# --` comment to declare each key"
            )
        elif not covered and not is_map:
            undocumented.append(dotted)
        elif not covered:
            chart.sections.append(dotted)
        if is_map:
            stack.append((indent, match["key"], covered or block is not None))
        block = None
    close_definition()
    if block is not None:
        raise DeclarationError(
            f"{where(block.first_line)}: this `# --` comment documents no key; put it right "
            "above the key it describes"
        )
    if undocumented:
        raise DeclarationError(
            f"values without a `# --` comment: {', '.join(undocumented)}; document each one"
        )
    return chart
