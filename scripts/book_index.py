"""What the site knows about the book, read from its sources without building it.

The Colab edition replaces each cross-reference with a link to the site and the text the
site shows ("Fig. 4.2", "Eq. 3.1", "Exercise 5.3", a section's title). This module
finds every page of `_toc.yml`, numbers them as the site does (chapters counted across
the numbered parts), and numbers each page's figures, equations and exercises as Sphinx
does with `numfig` at depth 1: one counter per chapter and kind, in reading order. It
also reads the citations from the bibliography with pybtex.

tests/browser/test_colab_links.py checks these numbers and anchors against a built site.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pybtex.database import parse_file
from pybtex.plugin import find_plugin
from pybtex.richtext import Text as RichText

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from myst_blocks import Directive, Text, parse_blocks, walk  # noqa: E402

HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<title>.+?)[ \t]*#*[ \t]*$")
FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,}|:{3,})")
TARGET = re.compile(r"^\((?P<label>[^()\s]+)\)=[ \t]*$")
LABELLED_MATH = re.compile(r"\$\$(?P<body>.+?)\$\$[ \t]*\((?P<label>[^()\s]+)\)", re.S)
FORMATS = {"figure": "Fig. {number}", "exercise": "Exercise {number}", "section": "Section {number}",
           "equation": "Eq. {number}"}


@dataclass(frozen=True)
class Target:
    """A label: the page it is on, its HTML id there, its kind, number and title."""

    doc: str
    anchor: str
    kind: str
    number: str = ""
    title: str = ""


@dataclass
class Page:
    """One page of the table of contents: its source file, section number and title."""

    doc: str
    path: Path
    number: str = ""
    title: str = ""


@dataclass
class BookIndex:
    """Pages, labels and citations of the book, and the URLs of the site."""

    site: str
    raw_files: str
    pages: dict[str, Page] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    citations: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # key: authors, year, full
    eq_format: str = "Eq. {number}"

    def url(self, doc: str, anchor: str = "") -> str:
        """The site's URL of page ``doc`` (a docname such as ``book/errata``)."""
        return f"{self.site}{doc}.html" + (f"#{anchor}" if anchor else "")

    def resolve_doc(self, reference: str, current: str) -> str:
        """The docname that ``{doc}`reference``` means on page ``current``."""
        reference = re.sub(r"\.(md|ipynb)$", "", reference)
        if reference.startswith("/"):
            doc = reference.lstrip("/")
        else:
            doc = posixpath.normpath(posixpath.join(posixpath.dirname(current), reference))
        if doc not in self.pages:
            raise KeyError(f"{current}: {{doc}} points at {reference!r}, which is not in _toc.yml")
        return doc

    def target(self, label: str, current: str) -> Target:
        if label not in self.targets:
            raise KeyError(f"{current}: unknown label {label!r}")
        return self.targets[label]


def strip_hand_number(title: str, chapter: str) -> str:
    """``"4.1 Transfer learning"`` -> ``"Transfer learning"`` in chapter ``"4"``: the site numbers
    titles itself. Only a number of the page's own chapter counts ("## 3 ways" stays in chapter 4)."""
    if not chapter:
        return title
    return re.sub(rf"^{re.escape(chapter)}(?:\.\d+)*\.?[ \t]+(?=\S)", "", title, count=1)


def next_section(page: str, counters: list[int], depth: int) -> str:
    """The number of the page's next section at ``depth`` (1: a ``##`` under a ``#`` title);
    ``counters`` holds the numbers so far and is updated. ``""`` on an unnumbered page."""
    counters[:] = counters[:depth] + [0] * (depth - len(counters))
    counters[depth - 1] += 1
    return ".".join([page, *map(str, counters)]) if page else ""


def heading_lines(cells: list[str]) -> list[tuple[int, int, int, str]]:
    """``(cell, line, level, title)`` of every heading in these Markdown texts, in reading
    order, outside code fences and directives (whose headings are not sections)."""
    found = []
    for c, text in enumerate(cells):
        fence = None
        for i, line in enumerate(text.split("\n")):
            opening = FENCE.match(line)
            if fence is None and opening:
                fence = opening.group(1)
            elif fence and line.strip() == fence[0] * len(line.strip()) and len(line.strip()) >= len(fence):
                fence = None
            elif fence is None and (heading := HEADING.match(line)):
                found.append((c, i, len(heading["hashes"]), heading["title"]))
    return found


def site_numbers(levels: list[int], page: str) -> list[str]:
    """The numbers the site gives headings of these levels, the first being the page's title."""
    counters: list[int] = []
    return [page] + [next_section(page, counters, max(level - levels[0], 1)) for level in levels[1:]]


def toc_numbers(toc: dict) -> list[tuple[str, str]]:
    """``(docname, section number)`` for every page of a jb-book toc, in reading order.

    Chapters are numbered across all numbered parts, as the site's sidebar shows them;
    pages of unnumbered parts (and the root) get ``""``.
    """
    pages, chapter = [(toc["root"], "")], 0

    def sections(entries: list[dict], prefix: str) -> None:
        for k, entry in enumerate(entries, start=1):
            number = f"{prefix}.{k}" if prefix else ""
            pages.append((entry["file"], number))
            sections(entry.get("sections", []), number)

    for part in toc.get("parts", [{"chapters": toc.get("chapters", []), "numbered": False}]):
        for entry in part.get("chapters", []):
            number = ""
            if part.get("numbered"):
                chapter += 1
                number = str(chapter)
            pages.append((entry["file"], number))
            sections(entry.get("sections", []), number)
    return pages


def page_cells(path: Path) -> list[tuple[str, dict]]:
    """``(markdown text, code cell metadata)`` per cell: a page's text and its figure cells."""
    if path.suffix == ".md":
        text = path.read_text(encoding="utf-8")
        front = re.match(r"^---\n.*?\n---\n", text, re.S)
        return [(text[front.end():] if front else text, {})]
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [("".join(c["source"]), {}) if c["cell_type"] == "markdown" else ("", c.get("metadata", {}))
            for c in cells]


class _PageNumbers:
    """Numbers the labelled things of one page into the index, as Sphinx's numfig does."""

    def __init__(self, index: BookIndex, page: Page, counters: dict[tuple[str, str], int]) -> None:
        self.index, self.page, self.counters = index, page, counters
        self.chapter = page.number.split(".")[0]
        self.sections: list[int] = []
        self.title_level = 0
        self.pending: str | None = None  # a target waiting for its heading

    def next_number(self, kind: str) -> str:
        key = (kind, self.chapter)
        self.counters[key] = self.counters.get(key, 0) + 1
        return f"{self.chapter}.{self.counters[key]}" if self.chapter else str(self.counters[key])

    def add(self, label: str, kind: str, anchor: str, number: str = "", title: str = "") -> None:
        if label in self.index.targets:
            raise ValueError(f"{self.page.doc}: label {label!r} is defined twice")
        self.index.targets[label] = Target(self.page.doc, anchor, kind, number, title)

    def heading(self, level: int, title: str) -> None:
        if not self.page.title:
            self.page.title, self.title_level = title, level
            number = self.page.number
        else:
            number = next_section(self.page.number, self.sections, max(level - self.title_level, 1))
        if self.pending:
            self.add(self.pending, "section", self.pending, number, title)
            self.pending = None

    def text(self, text: str, sections: bool) -> None:
        """Targets, headings (``sections``: outside directives only) and labelled equations."""
        for line in text.split("\n") if sections else []:
            if target := TARGET.match(line):
                self.pending = target["label"]
            elif heading := HEADING.match(line):
                self.heading(len(heading["hashes"]), heading["title"])
            elif line.strip() and self.pending:  # a target before a paragraph: an anchor only
                self.add(self.pending, "target", self.pending)
                self.pending = None
        for math in LABELLED_MATH.finditer(text):
            self.add(math["label"], "equation", f"equation-{math['label']}", self.next_number("equation"))

    def directive(self, block: Directive) -> None:
        label = block.options.get("label") or block.options.get("name")
        if block.name in ("exercise", "figure"):
            number = "" if "nonumber" in block.options else self.next_number(block.name)
            if label:
                title = block.argument if block.name == "exercise" else block.raw
                self.add(label, block.name, label, number, title)
        elif block.name == "math" and label:
            self.add(label, "equation", f"equation-{label}", self.next_number("equation"))

    def cell(self, text: str, metadata: dict) -> None:
        figure = metadata.get("mystnb", {}).get("figure")
        if figure:
            number = self.next_number("figure")
            if figure.get("name"):
                self.add(figure["name"], "figure", figure["name"], number, figure.get("caption", ""))
        blocks = parse_blocks(text)
        top_level = {id(block) for block in blocks}
        for block in walk(blocks):
            if isinstance(block, Text):
                self.text(block.text, sections=id(block) in top_level)
            elif isinstance(block, Directive):
                self.directive(block)


def read_citations(bibfile: Path) -> dict[str, tuple[str, str, str]]:
    """``key -> (authors as the site prints them, year, full reference)`` from a .bib file."""
    data = parse_file(str(bibfile))
    style = find_plugin("pybtex.style.formatting", "plain")()
    full = {entry.key: entry.text.render_as("text") for entry in style.format_entries(data.entries.values())}
    citations = {}
    for key, entry in data.entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [RichText.from_latex(" ".join(p.prelast_names + p.last_names)).render_as("text") for p in people]
        if not names:
            authors = entry.fields.get("organization", key)
        elif len(names) == 1:
            authors = names[0]
        elif len(names) == 2 and names[1] != "others":
            authors = f"{names[0]} and {names[1]}"
        else:
            authors = f"{names[0]} et al."
        citations[key] = (authors, entry.fields.get("year", "n.d."), full[key])
    return citations


def build_index(root: Path = ROOT) -> BookIndex:
    """The index of the book under ``root`` (its `_config.yml`, `_toc.yml` and pages)."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    site = (config.get("html") or {}).get("baseurl")
    if not site:
        raise SystemExit("_config.yml has no html: baseurl: (the site's URL), which the Colab edition links to")
    repo = config["repository"]["url"].rstrip("/").replace("https://github.com/", "https://raw.githubusercontent.com/")
    index = BookIndex(site.rstrip("/") + "/", f"{repo}/{config['repository'].get('branch', 'main')}/")
    index.eq_format = config.get("sphinx", {}).get("config", {}).get("math_eqref_format", index.eq_format)
    counters: dict[tuple[str, str], int] = {}
    for doc, number in toc_numbers(yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))):
        doc = re.sub(r"\.(md|ipynb)$", "", doc)
        path = next((root / (doc + s) for s in (".ipynb", ".md") if (root / (doc + s)).exists()), None)
        if path is None:
            raise SystemExit(f"_toc.yml lists {doc}, which has no .ipynb or .md file")
        page = index.pages[doc] = Page(doc, path, number)
        numbers = _PageNumbers(index, page, counters)
        for text, metadata in page_cells(path):
            numbers.cell(text, metadata)
    for bibfile in config.get("bibtex_bibfiles", []):
        index.citations.update(read_citations(root / bibfile))
    return index
