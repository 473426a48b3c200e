"""Serve the book's CJK web font, so that Chinese terms render without a CJK font installed.

The book prints 迁移学习, 多任务学习 and a bilingual glossary, and every page's sidebar
links "Glossary (English – 中文)". On a machine without a CJK font (a fresh Linux, the
browser test's headless Chromium) each of those characters is an empty box.
``book/_static/cjk-font.css`` adds a subset of Noto Sans SC (scripts/make_cjk_font.py)
as the last fallback of the theme's fonts; this extension serves that folder, links the
stylesheet, and preloads the font on every page. Without the preload, Chromium shapes
the sidebar before the font has arrived and keeps the empty boxes there even after it
has (the main text is redrawn; tests/browser/test_site.py checks both).
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config

STATIC = Path(__file__).resolve().parent.parent / "_static"
STYLESHEET = "cjk-font.css"
FONT = "cjk/noto-sans-sc-subset.woff"


def _serve(app: Sphinx, config: Config) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def _preload(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object) -> None:
    href = context["pathto"](f"_static/{FONT}", 1)
    # Fonts are fetched in CORS mode: without `crossorigin` the preloaded copy is not reused.
    link = f'<link rel="preload" href="{href}" as="font" type="font/woff" crossorigin="anonymous">'
    context["metatags"] = context.get("metatags", "") + "\n" + link


def setup(app: Sphinx) -> dict[str, object]:
    app.connect("config-inited", _serve)
    app.add_css_file(STYLESHEET)
    app.connect("html-page-context", _preload)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
