"""Every page of the built site in a real browser: headless Chromium, no network.

Run after the site is built (`make test` does: `make browser`). Needs Debian's
`chromium` (installed by `make browser-deps`) and playwright-python, which drives the
installed browser through `executable_path` (playwright's own browser download is not
used). Every request to a host other than this machine is blocked and counted as a
failure: the site must work offline, with nothing from a CDN.

Set SCREENSHOTS=DIR to save a screenshot of each page (`make screenshots`).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# "4.1. 4.1 Transfer", "3 3 Algorithms": a number the site adds, then the same written by hand.
REPEATED_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+\1(?:\.|\s|$)")
PAGE_TIMEOUT_MS = 180_000
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]

playwright = pytest.importorskip("playwright.sync_api")
if not CHROMIUM:
    pytest.skip("Chromium is not installed (make browser-deps installs Debian's package)", allow_module_level=True)
if not (SITE / "index.html").exists():
    pytest.skip("the site is not built: run `make site` first", allow_module_level=True)


def _pages() -> list[str]:
    skip = {"genindex.html", "search.html"}
    pages = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html")
                   if "_static" not in p.parts and "_sources" not in p.parts and p.name not in skip)
    return [p for p in pages if not (SITE / p).read_text(errors="ignore").startswith("<meta http-equiv")]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


def _notebook_source(page: str) -> Path | None:
    """The notebook a page was built from (its launch buttons must point at it)."""
    source = ROOT / Path(page).with_suffix(".ipynb")
    return source if source.exists() else None


def _check_launch_buttons(page: str, launch: list[str]) -> None:
    """Colab opens the Colab edition (colab/, plain Markdown); Binder the source notebook."""
    notebook = _notebook_source(page)
    if notebook is None:
        return
    rel = notebook.relative_to(ROOT).as_posix()
    assert launch, f"{page}: a notebook page without launch buttons"
    colab = [h for h in launch if "colab.research.google.com" in h]
    assert colab, f"{page}: no Colab button"
    for href in launch:
        assert rel in unquote(href), f"{page}: launch link {href} does not point at {rel}"
        if href in colab:  # .../github/ORG/REPO/blob/BRANCH/colab/book/...
            edition = unquote(urlparse(href).path).split("/blob/", 1)[1].split("/", 1)[1]
            assert edition == f"colab/{rel}" and (ROOT / edition).is_file(), \
                f"{page}: the Colab button {href} does not open the Colab edition colab/{rel}"


def _check_titles(page: str, tab) -> None:
    """No heading or sidebar entry shows its number twice ("4.1. 4.1 Transfer learning")."""
    texts = tab.evaluate("() => [...document.querySelectorAll('h1, h2, h3, h4, nav a')].map(e => e.innerText)")
    repeated = [t for t in texts if REPEATED_NUMBER.match(t.strip())]
    assert not repeated, f"{page}: numbers written twice: {repeated[:3]}"
    title = tab.evaluate("() => document.querySelector('main h1') ? document.querySelector('main h1').innerText : ''")
    assert not REPEATED_NUMBER.match(tab.title()) and not REPEATED_NUMBER.match(title.strip()), \
        f"{page}: the title {title!r} repeats its number"


@pytest.mark.parametrize("page", _pages())
def test_page(page, server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # Waits, not speed checks: a loaded 2-core machine can take over 30 s (playwright's
    # default) to reach network idle on a long page.
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    problems: list[str] = []
    off_site: list[str] = []

    def route(request_route):
        host = urlparse(request_route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or request_route.request.url.startswith("data:"):
            request_route.continue_()
        else:
            off_site.append(request_route.request.url)
            request_route.abort()

    tab.route("**/*", route)
    tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.goto(server + page, wait_until="load")
    # MathJax typesets asynchronously; wait for it where the page loads it.
    tab.wait_for_function("() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise)",
                          timeout=PAGE_TIMEOUT_MS)
    tab.evaluate("() => window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise : null")
    tab.wait_for_load_state("networkidle")

    text = tab.evaluate("() => document.querySelector('main') ? document.querySelector('main').innerText : "
                        "document.body.innerText")
    for raw in ("$$", "\\(", "\\[", "\\begin{"):
        assert raw not in text, f"{page}: raw TeX {raw!r} left in the text: MathJax did not typeset it"
    if tab.evaluate("() => document.querySelectorAll('.math').length") > 0:
        assert tab.evaluate("() => document.querySelectorAll('mjx-container').length") > 0, \
            f"{page}: equations present but no MathJax output"

    broken = tab.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                          ".map(i => i.getAttribute('src'))")
    assert not broken, f"{page}: images that did not load: {broken}"

    launch = tab.evaluate("() => [...document.querySelectorAll('a')].map(a => a.href)"
                          ".filter(h => h.includes('colab.research.google.com') || h.includes('mybinder.org'))")
    _check_launch_buttons(page, launch)
    _check_titles(page, tab)

    links = tab.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
    for href in links:
        url = urlparse(urljoin(server + page, href))
        if url.hostname != "127.0.0.1" or not url.path:
            continue
        target = SITE / unquote(url.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        assert target.exists(), f"{page}: internal link {href!r} points at a missing file"

    assert not off_site, f"{page}: requests to other hosts (the site must work offline): {off_site[:5]}"
    assert not problems, f"{page}: JavaScript errors: {problems[:5]}"
    shots = os.environ.get("SCREENSHOTS")
    if shots:
        out = Path(shots) / (page.replace("/", "__").removesuffix(".html") + ".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(out), full_page=True)
    context.close()


# Marks every element whose own text has CJK characters (the web font's unicode-range)
# and returns how many each has, so that CDP can ask which fonts drew them.
MARK_CJK = """() => {
  const cjk = /[\\u3000-\\u30ff\\u3400-\\u4dbf\\u4e00-\\u9fff\\uf900-\\ufaff\\ufe30-\\ufe4f\\uff00-\\uffef]/g;
  const counts = [];
  for (const e of document.querySelectorAll('body *')) {
    const own = [...e.childNodes].filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join('');
    const n = (own.match(cjk) || []).length;
    if (n) { e.setAttribute('data-cjk', String(counts.length)); counts.push(n); }
  }
  return counts;
}"""


def test_chinese_text_renders_with_the_web_font(server, browser):
    """The glossary's Chinese terms, in the text and in the sidebar, are drawn by the book's
    CJK subset and not as empty boxes: Chromium says which fonts drew each element's text
    (CSS.getPlatformFontsForNode), and the subset must have drawn every CJK character."""
    context = browser.new_context()
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    tab.route("**/*", lambda r: r.continue_() if urlparse(r.request.url).hostname == "127.0.0.1" else r.abort())
    tab.goto(server + "book/glossary.html", wait_until="load")
    faces = tab.evaluate("async () => { await document.fonts.ready; return [...document.fonts]"
                         ".filter(f => f.family.includes('Book CJK')).map(f => f.status); }")
    assert faces == ["loaded"], f"the CJK web font did not load: {faces}"
    counts = tab.evaluate(MARK_CJK)
    cdp = context.new_cdp_session(tab)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    checked = []
    for i, count in enumerate(counts):
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": f'[data-cjk="{i}"]'})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        if not fonts:  # not laid out (a hidden copy of the title)
            continue
        text = tab.evaluate(f"() => document.querySelector('[data-cjk=\"{i}\"]').innerText")
        drawn = sum(f["glyphCount"] for f in fonts if f.get("isCustomFont") and f["familyName"] == "Noto Sans CJK SC")
        assert drawn == count, f"{text[:40]!r}: {count} CJK characters, {drawn} drawn by the book's font ({fonts})"
        checked.append(text)
    # the title and the sidebar link: the sidebar is drawn before the font arrives (see cjk_font.py)
    assert len(checked) >= 10 and sum("Glossary (English" in t for t in checked) >= 2, checked[:3]
    context.close()
