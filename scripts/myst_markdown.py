"""MyST Markdown to the plain Markdown that Colab (and nbconvert) render.

Roles become links to the book's site: citations become "(Author, year)" linked to the
bibliography page, cross-references become the text the site shows ("Eq. 3.1", "Fig. 4.2",
a section title) linked to that page and anchor, and package objects link to the API
page. Exercises become bold-headed blocks, solutions fold into ``<details>``, figures and
admonitions become blockquotes with a bold title. Dollar math and amsmath environments
stay, because Colab's renderer typesets them; a labelled equation gets its number as a
``\\tag``. Code fences and inline code are left exactly as they are.

An unknown role or directive, or a label that the book does not define, raises an error
that names the page: the site build would fail on it too.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from book_index import FORMATS, LABELLED_MATH, TARGET, BookIndex
from myst_blocks import Block, Code, Directive, Text, parse_blocks

ROLE_OR_CODE = re.compile(r"(?P<role>\{(?P<name>[\w:.+-]+)\})?(?P<ticks>`+)")
LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]\n]*)\]\((?P<target>[^()\s]+)\)")
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
COMMENT = re.compile(r"^%.*$|^\+\+\+.*$")
ADMONITIONS = {"note", "warning", "tip", "important", "hint", "caution", "attention", "danger", "error",
               "seealso", "admonition", "margin", "sidebar", "epigraph", "pull-quote", "topic"}
PYTHON_ROLES = {"py:obj", "py:func", "py:class", "py:meth", "py:attr", "py:data", "py:exc", "py:const",
                "py:mod", "py:property"}
PLACEHOLDER = "\x00{}\x00"


@dataclass
class Converter:
    """Converts the Markdown of one page (``doc``) of the book indexed by ``index``."""

    index: BookIndex
    doc: str

    def markdown(self, text: str) -> str:
        return self.blocks(parse_blocks(text))

    def blocks(self, blocks: list[Block]) -> str:
        parts = []
        for block in blocks:
            if isinstance(block, Code):
                parts.append(block.text)
            elif isinstance(block, Text):
                parts.append(self.text(block.text))
            else:
                rendered = self.directive(block).strip("\n")
                parts.append("\n".join(block.indent + line if line else line for line in rendered.split("\n")))
        return "\n".join(parts)

    # ----- blocks -------------------------------------------------------------------

    def text(self, text: str) -> str:
        """A text block: targets and comments dropped, labelled equations tagged, inline markup converted."""
        kept = [line for line in text.split("\n") if not (TARGET.match(line) or COMMENT.match(line))]
        text = "\n".join(kept)
        saved: list[str] = []

        def save(markdown: str) -> str:
            saved.append(markdown)
            return PLACEHOLDER.format(len(saved) - 1)

        def tag(match: re.Match[str]) -> str:
            number = self.index.target(match["label"], self.doc).number
            return save(f"$${match['body'].rstrip()} \\tag{{{number}}}\n$$")

        text = LABELLED_MATH.sub(tag, text)
        text = re.sub(r"\$\$.+?\$\$", lambda m: save(m.group(0)), text, flags=re.S)
        text = self.inline(text, save)
        text = LINK.sub(self.link, text)
        return re.sub("\x00(\\d+)\x00", lambda m: saved[int(m.group(1))], text)  # saved text holds none

    def inline(self, text: str, save) -> str:
        """Roles converted and code spans protected (both replaced by placeholders)."""
        out, pos = [], 0
        while match := ROLE_OR_CODE.search(text, pos):
            ticks = match["ticks"]
            close = re.compile(r"(?<!`)" + ticks + r"(?!`)").search(text, match.end())
            if close is None:  # a lone backtick run is literal text
                out.append(text[pos:match.end()])
                pos = match.end()
                continue
            content = text[match.end():close.start()]
            out.append(text[pos:match.start()])
            if match["role"]:
                out.append(save(self.role(match["name"], content)))
            else:
                out.append(save(text[match.start():close.end()]))
            pos = close.end()
        out.append(text[pos:])
        return "".join(out)

    def link(self, match: re.Match[str]) -> str:
        """A MyST link to a label or a page becomes a site link; a relative image a raw file URL."""
        text, target = match["text"], match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            return match.group(0)
        if match["bang"]:
            return f"![{text}]({self.file_url(target)})"
        path, _, anchor = target.partition("#")
        label = anchor if not path else path
        if label in self.index.targets and (not path or not anchor):
            found = self.index.target(label, self.doc)
            return f"[{text or self.ref_text(found)}]({self.index.url(found.doc, found.anchor)})"
        if path.endswith((".md", ".ipynb")) or not path:
            doc = self.index.resolve_doc(path, self.doc) if path else self.doc
            return f"[{text}]({self.index.url(doc, anchor)})"
        if "/" in path or "." in path:  # another file of the repository
            return f"[{text}]({self.file_url(target)})"
        raise KeyError(f"{self.doc}: the link target {target!r} is neither a label nor a file")

    def file_url(self, path: str) -> str:
        """A file of the repository, given relative to this page, as a URL that Colab can load."""
        return self.index.raw_files + posixpath.normpath(posixpath.join(posixpath.dirname(self.doc), path))

    # ----- roles --------------------------------------------------------------------

    def role(self, name: str, content: str) -> str:
        explicit = EXPLICIT.match(content)
        text, target = (explicit["text"], explicit["target"]) if explicit else ("", content.strip())
        if name == "cite" or name.startswith("cite:"):
            return self.cite(name, target)
        if name == "doc":
            doc = self.index.resolve_doc(target, self.doc)
            return f"[{text or self.index.pages[doc].title}]({self.index.url(doc)})"
        if name in ("ref", "numref", "eq"):
            found = self.index.target(target, self.doc)
            if name == "eq":
                shown = (text or self.index.eq_format).replace("{number}", found.number)
            elif name == "numref":
                shown = (text or FORMATS.get(found.kind, "{number}")).replace("%s", found.number)
                shown = shown.replace("{number}", found.number).replace("{name}", found.title)
            else:
                shown = text or self.ref_text(found)
            return f"[{shown}]({self.index.url(found.doc, found.anchor)})"
        if name in PYTHON_ROLES:
            return self.python(name, text, target)
        if name == "math":
            return f"${content}$"
        if name in ("sub", "sup", "kbd", "abbr"):
            tag = {"abbr": "abbr"}.get(name, name)
            return f"<{tag}>{text or target}</{tag}>"
        if name in ("code", "literal", "file", "samp", "command"):
            return f"`{content}`"
        raise ValueError(f"{self.doc}: the Colab edition does not know the MyST role {{{name}}}")

    def ref_text(self, found) -> str:
        if found.kind in ("exercise", "figure") and found.number:
            return FORMATS[found.kind].replace("{number}", found.number)
        if found.title:
            return found.title
        raise ValueError(f"{self.doc}: a reference to {found.anchor!r} needs an explicit text")

    def cite(self, name: str, keys: str) -> str:
        parts = []
        for key in (k.strip() for k in keys.split(",")):
            if key not in self.index.citations:
                raise KeyError(f"{self.doc}: no bibliography entry {key!r}")
            authors, year, full = self.index.citations[key]
            shown = {"cite:t": f"{authors} ({year})", "cite:ts": f"{authors} ({year})", "cite:year": year,
                     "cite:author": authors}.get(name, f"{authors}, {year}")
            title = full.replace('"', "'")
            parts.append(f'[{shown}]({self.index.url("book/bibliography")} "{title}")')
        if name in ("cite:t", "cite:ts", "cite:year", "cite:author"):
            return ", ".join(parts)
        return "(" + "; ".join(parts) + ")"

    def python(self, name: str, text: str, target: str) -> str:
        shown = text or (target.lstrip("~").rsplit(".", 1)[-1] if target.startswith("~") else target)
        target = target.lstrip("~")
        anchor = f"module-{target}" if name == "py:mod" else target
        return f"[`{shown}`]({self.index.url('book/api', anchor)})"

    # ----- directives ---------------------------------------------------------------

    def directive(self, block: Directive) -> str:
        body = self.blocks(block.body).strip("\n")
        if block.name == "exercise":
            return self.exercise(block, body)
        if block.name == "solution":
            exercise = self.index.target(block.argument, self.doc)
            return f"<details>\n<summary>Solution to {self.ref_text(exercise)}</summary>\n\n{body}\n\n</details>"
        if block.name in ("figure", "image"):
            return self.figure(block, body)
        if block.name == "math":
            label = block.options.get("label")
            tag = f" \\tag{{{self.index.target(label, self.doc).number}}}" if label else ""
            return f"$$\n{block.raw}{tag}\n$$"
        if block.name in ("code", "code-block", "code-cell", "sourcecode"):
            return f"```{block.argument}\n{block.raw}\n```"
        if block.name == "dropdown" or "dropdown" in block.options.get("class", "").split():
            title = self.text(block.argument) or block.name.capitalize()
            return f"<details>\n<summary><b>{title}</b></summary>\n\n{body}\n\n</details>"
        if block.name in ADMONITIONS:
            title = self.text(block.argument) if block.name == "admonition" else block.name.capitalize()
            if block.name == "seealso":
                title = "See also"
            return quote(f"**{title}**" if title else "", body)
        if block.name == "bibliography":
            return f"See the [bibliography]({self.index.url('book/bibliography')})."
        raise ValueError(f"{self.doc}: the Colab edition does not know the MyST directive {{{block.name}}}")

    def exercise(self, block: Directive, body: str) -> str:
        label = block.options.get("label")
        number = self.index.target(label, self.doc).number if label else ""
        heading = f"Exercise {number}" if number else "Exercise"
        if block.argument:
            heading += f" ({self.text(block.argument)})"
        return f"**{heading}**\n\n{body}"

    def figure(self, block: Directive, caption: str) -> str:
        alt = block.options.get("alt", "")
        image = f"![{alt}]({self.file_url(block.argument)})"
        label = block.options.get("name") or block.options.get("label")
        number = self.index.target(label, self.doc).number if label and block.name == "figure" else ""
        title = f"**Fig. {number}** " if number else ""
        return quote(image, title + caption if (title or caption) else "")


def quote(title: str, body: str) -> str:
    """A blockquote: the title line, a blank line, then the body, every line prefixed."""
    lines = [title] if title else []
    if body:
        lines += ([""] if lines else []) + body.split("\n")
    return "\n".join(f"> {line}" if line else ">" for line in lines)
