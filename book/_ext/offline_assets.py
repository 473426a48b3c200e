"""Serve MathJax from the built site itself, so that the book works offline.

Sphinx loads MathJax from a CDN by default: a site built on a machine without
internet, or opened in a classroom without a network, then shows raw ``\\(x^2\\)``.
This extension copies MathJax 3 out of an installed Python package
(``django-static-mathjax``, which ships the files and needs nothing else) into
``_static/mathjax`` and points ``mathjax_path`` at it.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

# What the page needs: the combined TeX/MathML-to-HTML component, the fonts and the
# components it loads on demand (TeX extensions, the menu, accessibility).
PARTS = ("tex-mml-chtml.js", "output/chtml", "input", "ui", "a11y", "adaptors", "sre")
ENTRY = "mathjax/tex-mml-chtml.js"


def mathjax_source() -> Path:
    """The folder of MathJax 3's ``es5`` build inside the installed package."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            "MathJax is not installed: `pip install django-static-mathjax` (part of the "
            "book extra: pip install -e '.[book]') so that the site does not need a CDN"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    if not (folder / "tex-mml-chtml.js").is_file():
        raise ExtensionError(f"{folder} does not hold MathJax 3's tex-mml-chtml.js")
    return folder


def _configure(app: Sphinx, config: Config) -> None:
    mathjax_source()  # fail early, before a long build, if it is missing
    config.mathjax_path = ENTRY


def _copy(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in PARTS:
        src, dst = source / part, target / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object) -> None:
    # sphinx-thebe registers its inline `const THEBE_JS_URL = ...` script each time the
    # environment is re-read, and a page that declares a const twice stops its scripts
    # with a SyntaxError; keep the first copy of each script.
    seen, unique = set(), []
    for script in context.get("script_files", []):
        filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("config-inited", _configure)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
