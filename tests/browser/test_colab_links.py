"""The Colab edition's links land on the built site, and say the numbers the site shows.

scripts/book_index.py numbers figures, equations, exercises and sections from the
sources, as Sphinx does; this test holds those numbers and every anchor against the
site that `make site` built (it runs after it in `make test`, with the browser test).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
sys.path.insert(0, str(ROOT / "scripts"))
from book_index import build_index  # noqa: E402

if not (SITE / "index.html").exists():
    pytest.skip("the site is not built: run `make site` first", allow_module_level=True)

LINK = re.compile(r"\[(?P<text>[^\]]*)\]\((?P<url>https?://[^)\s]+)")
# "Fig. 4.2", "Eq. 3.1", "Exercise 4.12", "Section 4.1.7", "5.2.3 Cross-domain ...".
NUMBERED_TEXT = re.compile(r"^(?:(?:Fig\.|Eq\.|Exercise|Section)\s+)?(?P<number>\d+(?:\.\d+)*)(?:\s|$)")
# What the site prints as an element's number, right after its id.
SITE_NUMBER = re.compile(r'class="(?:caption-number|eqno|section-number)">[^<\d]*?(?P<number>\d+(?:\.\d+)*)')


SITE_URL = build_index().site


def _site_links() -> list[tuple[str, str, str]]:
    """``(notebook, link text, URL)`` of every link from the Colab edition into the site."""
    found = []
    for path in sorted((ROOT / "colab").rglob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                found += [(path.name, m["text"], m["url"]) for m in LINK.finditer(cell.source)
                          if m["url"].startswith(SITE_URL)]
    return found


LINKS = _site_links()


def test_the_colab_edition_links_into_the_site():
    assert len(LINKS) > 200 and {url.split("#")[0].rsplit("/", 1)[-1] for *_, url in LINKS} >= {
        "bibliography.html", "api.html"}


@pytest.mark.parametrize("url", sorted({url for *_, url in LINKS}))
def test_link_target_exists(url):
    page, _, anchor = unquote(url[len(SITE_URL):]).partition("#")
    html = SITE / urlparse(page).path
    assert html.is_file(), f"{url}: no such page on the site"
    if anchor:
        assert f'id="{anchor}"' in html.read_text(encoding="utf-8"), f"{url}: no such anchor on the page"


@pytest.mark.parametrize("notebook, text, url", [link for link in LINKS
                                                 if "#" in link[2] and NUMBERED_TEXT.match(link[1])])
def test_link_numbers_match_the_site(notebook, text, url):
    page, _, anchor = unquote(url[len(SITE_URL):]).partition("#")
    html = (SITE / page).read_text(encoding="utf-8")
    shown = SITE_NUMBER.search(html, html.index(f'id="{anchor}"'))
    assert shown, f"{notebook}: {url} has no number on the site"
    assert NUMBERED_TEXT.match(text)["number"] == shown["number"], \
        f"{notebook}: the link says {text!r}, the site numbers it {shown['number']}"
