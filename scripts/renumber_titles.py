"""Remove the hand-written numbers from the notebooks' headings: the site numbers them.

    python scripts/renumber_titles.py          # rewrite the notebooks of _toc.yml in place
    python scripts/renumber_titles.py --check  # only report; exit 1 if a notebook would change

`numbered: true` in _toc.yml numbers every chapter, page and section, so a heading
written "# 4.1 Transfer learning, corrected" shows as "4.1. 4.1 Transfer learning,
corrected" in the sidebar and on the page. This script strips a leading number that
belongs to the page's own chapter ("4.1", "5.2.3") from every Markdown heading (code
fences are left alone).

Some chapters number only some of their sections by hand, following the article: chapter
5 opens with an unnumbered "## The six trends at a glance" before "## 5.1 Transfer
learning", so the site would call that section 5.2 while the prose (and the article)
say 5.1. Such a leading unnumbered heading becomes a bold paragraph, so that the site's
numbers are the ones the text uses. The script then checks that every stripped number
equals the number the site now gives that heading, and says where it does not.

A ``{ref}`` to such a section showed its title with the number ("5.1.1 More efficient
transfer"); it becomes ``{numref}`%s {name} <label>` ``, which shows the same text with the
site's number. Running the script again changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from book_index import build_index, heading_lines, site_numbers, strip_hand_number  # noqa: E402

def numbered_references(nb: nbformat.NotebookNode, labels: set[str]) -> list[str]:
    """``{ref}`label``` to a hand-numbered section -> ``{numref}`%s {name} <label>```, in place."""
    changes = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for label in sorted(labels):
            role = f"{{ref}}`{label}`"
            if role in cell.source:
                cell.source = cell.source.replace(role, f"{{numref}}`%s {{name}} <{label}>`")
                changes.append(f"{role} -> {{numref}}`%s {{name}} <{label}>`")
    return changes


def renumber(nb: nbformat.NotebookNode, page: str) -> tuple[list[str], list[str]]:
    """Strip hand numbers in place; return (what changed, numbers that still disagree)."""
    chapter, changes = page.split(".")[0], []
    found = heading_lines([c.source if c.cell_type == "markdown" else "" for c in nb.cells])
    lines = {c: nb.cells[c].source.split("\n") for c, *_ in found}
    headings = []  # (cell, line, level, title, hand number or "")
    for c, i, level, written in found:
        title = strip_hand_number(written, chapter)
        headings.append((c, i, level, title, written[: len(written) - len(title)].strip().rstrip(".")))
    for k, (c, i, level, title, hand) in enumerate(headings[1:], start=1):
        first_numbered = next((h for h in headings[k:] if h[2] == level and h[4]), None)
        siblings_before = [h for h in headings[1:k] if 0 < h[2] <= level]  # 0: demoted already
        if not hand and first_numbered and all(h[2] == level and not h[4] for h in siblings_before):
            lines[c][i] = f"**{title}**"
            changes.append(f"heading {title!r} made a bold paragraph, so that the numbered ones keep their numbers")
            headings[k] = (c, i, 0, title, "")
    for c, i, level, title, hand in headings:
        if hand and level:
            lines[c][i] = f"{'#' * level} {title}"
            changes.append(f"{hand} {title}")
    kept = [h for h in headings if h[2]]
    disagree = [f"{hand} {title}: the site numbers it {number}"
                for (_, _, _, title, hand), number in zip(kept, site_numbers([h[2] for h in kept], page))
                if hand and page and hand != number]
    for c, text in lines.items():
        nb.cells[c].source = "\n".join(text)
    return changes, disagree


def main(check: bool) -> int:
    index, status = build_index(), 0
    hand_numbered = {label for label, target in index.targets.items() if target.kind == "section"
                     and strip_hand_number(target.title, target.number.split(".")[0]) != target.title}
    for doc, page in index.pages.items():
        if page.path.suffix != ".ipynb":
            continue
        nb = nbformat.read(page.path, as_version=4)
        changes, disagree = renumber(nb, page.number)
        changes += numbered_references(nb, hand_numbered)
        name = page.path.relative_to(ROOT)
        for line in changes:
            print(f"{name}: {line}")
        for line in disagree:
            print(f"{name}: CHECK BY HAND: {line}", file=sys.stderr)
        status |= bool(disagree) or (check and bool(changes))
        if changes and not check:
            nbformat.write(nb, page.path)
    return int(status)


if __name__ == "__main__":
    if sys.argv[1:] not in ([], ["--check"]):
        raise SystemExit("usage: renumber_titles.py [--check]")
    sys.exit(main(sys.argv[1:] == ["--check"]))
