"""scripts/renumber_titles.py: hand-written heading numbers go, the site's numbers stay right."""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import renumber_titles  # noqa: E402


def _notebook(*texts: str) -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_markdown_cell(t) if not t.startswith("print") else nbformat.v4.new_code_cell(t)
             for t in texts]
    return nbformat.v4.new_notebook(cells=cells)


def test_numbers_are_stripped_and_a_leading_unnumbered_heading_demoted():
    nb = _notebook("# 5 Trends\n\nIntro.\n\n## At a glance\n\nA table.",
                   "print(1)",
                   "## 5.1 Transfer\n\n```\n## 5.1 in a fence\n```\n\n### 5.1.1 Efficient\n\n## 3 ways\n\n## Summary")
    changes, disagree = renumber_titles.renumber(nb, "5")
    assert nb.cells[0].source == "# Trends\n\nIntro.\n\n**At a glance**\n\nA table."
    assert nb.cells[2].source == "## Transfer\n\n```\n## 5.1 in a fence\n```\n\n### Efficient\n\n## 3 ways\n\n## Summary"
    assert disagree == [] and len(changes) == 4
    assert renumber_titles.renumber(nb, "5") == ([], [])  # running it again changes nothing


def test_numbers_the_site_would_change_are_reported():
    nb = _notebook("# 2 Concepts\n\n## Overview\n\n## More\n\n## 2.1 Domains\n\n## Aside\n\n## 2.2 Tasks")
    changes, disagree = renumber_titles.renumber(nb, "2")
    assert "**Overview**\n\n**More**" in nb.cells[0].source and "## Aside" in nb.cells[0].source
    assert disagree == ["2.2 Tasks: the site numbers it 2.3"]  # an unnumbered heading between: by hand


def test_references_to_numbered_sections_keep_their_text():
    nb = _notebook("See {ref}`sec-a` and {ref}`sec-b`.", "print('{ref}`sec-a`')")
    assert renumber_titles.numbered_references(nb, {"sec-a"}) == ["{ref}`sec-a` -> {numref}`%s {name} <sec-a>`"]
    assert nb.cells[0].source == "See {numref}`%s {name} <sec-a>` and {ref}`sec-b`."
    assert nb.cells[1].source == "print('{ref}`sec-a`')"
