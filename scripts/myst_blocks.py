"""Split MyST Markdown into blocks: plain text, code fences and (nested) directives.

Both the book index (which numbers figures, equations and exercises) and the Colab
converter walk the same blocks, so that they agree on what is a directive and what is
code. Only the block structure is parsed here; inline markup (roles, links, math) stays
in the text blocks.

A directive opens with three or more backticks or colons followed by ``{name}``, and
closes at the first line of at least as many of the same character, as in MyST. Its
options come either as ``:key: value`` lines or as a YAML block between ``---`` lines.
A fence without ``{name}`` is code and is never looked into.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Union

import yaml

OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[\w:.+-]+)\}[ \t]*(?P<argument>.*)$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")


@dataclass
class Text:
    """Markdown between fences, inline markup untouched."""

    text: str


@dataclass
class Code:
    """A code fence, kept verbatim (its opening and closing lines included)."""

    text: str


@dataclass
class Directive:
    """``{name} argument``, its options, and its content parsed into blocks."""

    name: str
    argument: str
    options: dict[str, str]
    body: list["Block"] = field(default_factory=list)
    indent: str = ""
    raw: str = ""  # the directive's content as written, for directives whose body is not Markdown


Block = Union[Text, Code, Directive]


def _closing(fence: str) -> re.Pattern[str]:
    return re.compile(r"^[ \t]*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*$")


def _dedent(lines: list[str], indent: str) -> list[str]:
    return [line[len(indent):] if line.startswith(indent) else line.lstrip(" \t") for line in lines]


def _options(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """The directive's options and the lines of its content."""
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is not None:
            options = yaml.safe_load("\n".join(lines[1:end])) or {}
            return {str(k): str(v) for k, v in options.items()}, lines[end + 1:]
    options, i = {}, 0
    while i < len(lines) and (match := OPTION.match(lines[i])):
        options[match["key"]] = match["value"].strip()
        i += 1
    return options, lines[i:]


def parse_blocks(text: str) -> list[Block]:
    """``text`` as a list of blocks, directives' contents parsed recursively."""
    lines, blocks, pending = text.split("\n"), [], []

    def flush() -> None:
        if pending:
            blocks.append(Text("\n".join(pending)))
            pending.clear()

    i = 0
    while i < len(lines):
        match = OPENING.match(lines[i])
        info = match["info"].strip() if match else ""
        directive = DIRECTIVE_INFO.match(info) if match else None
        is_fence = match is not None and (
            directive is not None or (match["fence"][0] != ":" and "`" not in info))
        if not is_fence:
            pending.append(lines[i])
            i += 1
            continue
        closing = _closing(match["fence"])
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), len(lines))
        flush()
        if directive is None:
            blocks.append(Code("\n".join(lines[i:end + 1])))
        else:
            options, content = _options(_dedent(lines[i + 1:end], match["indent"]))
            while content and not content[0].strip():
                content = content[1:]
            raw = "\n".join(content).rstrip()
            blocks.append(Directive(directive["name"], directive["argument"].strip(), options,
                                    parse_blocks(raw) if raw else [], match["indent"], raw))
        i = end + 1
    flush()
    return blocks


def walk(blocks: list[Block]) -> Iterator[Block]:
    """Every block in reading order, a directive before the blocks of its content."""
    for block in blocks:
        yield block
        if isinstance(block, Directive):
            yield from walk(block.body)
