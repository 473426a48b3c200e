"""The *Colab* launch button opens the Colab edition of a page (``colab/``), not its source.

Colab renders Markdown cells with a plain Markdown renderer, so the source notebooks'
MyST markup (citations, cross-references, exercises) would show there as raw text, and
their solutions in plain view. ``make colab`` writes an edition of every notebook in
plain Markdown under ``colab/``, with the same relative paths; sphinx-book-theme builds
the launch buttons (priority 501), and this handler, run after it, points the Colab one
into that folder. The Binder button keeps the source notebooks: Jupyter Lab there can
render MyST (``jupyterlab-myst``).
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

EDITION = "colab"


def colab_url(url: str, branch: str) -> str:
    """``url`` of a Colab button with the notebook's path moved under ``colab/``."""
    marker = f"/blob/{branch}/"
    if marker not in url:
        raise ExtensionError(f"unexpected Colab launch URL {url!r}: no {marker!r} in it")
    base, path = url.split(marker, 1)
    # path_to_book "." makes the theme write "./book/...": the same path, said plainly.
    return f"{base}{marker}{EDITION}/{path.removeprefix('./')}"


def point_colab_at_edition(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object) -> None:
    theme = app.config.html_theme_options
    branch = theme.get("repository_branch") or "main"
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("text") != "Colab":
                continue
            button["url"] = colab_url(button["url"], branch)
            source = Path(app.env.doc2path(pagename)).with_suffix(".ipynb")
            edition = Path(app.srcdir) / EDITION / source.relative_to(app.srcdir)
            if not edition.is_file():  # a warning, so that `-W` fails the build and names the page
                LOGGER.warning(f"{edition} is missing: run `make colab` to write the Colab edition",
                               location=pagename)


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("html-page-context", point_colab_at_edition, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
