"""The student edition's site: with ``hide_solutions`` on, coding answers go too.

sphinx-exercise's ``hide_solutions`` removes the ``{solution}`` blocks, but a coding
exercise's reference answer is a code cell (tagged ``solution``), which it does not
know about. This extension replaces each such cell with a one-line note when
``hide_solutions`` is on, so the student site shows the exercise and its self-check
but not the answer. The teacher's site (``hide_solutions`` off) is unchanged.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx

NOTE = "The reference answer to this exercise is not shown in the student edition."


def drop_solution_cells(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    if not app.config["hide_solutions"]:
        return
    for cell in list(doctree.findall(nodes.container)):
        if "tag_solution" in cell.get("classes", []):
            # parent.replace, not replace_self, which would copy the cell's classes over.
            cell.parent.replace(cell, nodes.paragraph(text=NOTE, classes=["student-edition-note"]))


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx_exercise")  # defines hide_solutions
    app.connect("doctree-resolved", drop_solution_cells)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
