"""`make colab`: the Colab edition is up to date, free of MyST, and renders as plain Markdown."""

import re
import sys
from pathlib import Path

import nbformat
import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import book_index  # noqa: E402
import make_colab  # noqa: E402
from myst_markdown import Converter  # noqa: E402
from toc_notebooks import toc_notebooks  # noqa: E402

SITE = "https://example.org/book/"


def _index() -> book_index.BookIndex:
    index = book_index.BookIndex(SITE, "https://raw.example.org/repo/main/")
    for doc, number, title in [("book/ch/page", "4.1", "Transfer"), ("book/errata", "", "Errata"),
                               ("book/api", "", "API"), ("book/bibliography", "", "Bibliography")]:
        index.pages[doc] = book_index.Page(doc, ROOT / (doc + ".md"), number, title)
    T = book_index.Target
    index.targets.update({
        "ex-a": T("book/ch/page", "ex-a", "exercise", "4.2"),
        "fig-a": T("book/ch/page", "fig-a", "figure", "4.3", "A caption"),
        "eq-a": T("book/ch/page", "equation-eq-a", "equation", "4.5"),
        "sec-a": T("book/errata", "sec-a", "section", "", "What is wrong"),
    })
    index.citations.update({"kendall2018": ("Kendall et al.", "2018", "Alex Kendall. Multi-task. 2018."),
                            "pan2010": ("Pan and Yang", "2010", 'A "survey". 2010.')})
    return index


def convert(text: str) -> str:
    return Converter(_index(), "book/ch/page").markdown(text)


def html(text: str) -> str:
    return MarkdownIt("commonmark").render(convert(text))


def test_roles_become_links_to_the_site():
    out = convert("As {cite}`kendall2018,pan2010` show, {doc}`../errata` and {ref}`sec-a` and "
                  "{ref}`ex-a` and {numref}`fig-a` and {eq}`eq-a` and {numref}`Figure %s <fig-a>` "
                  "and {py:obj}`mtl_tl.engine.fit` and {py:obj}`a.b <a.c>` and {py:mod}`mtl_tl.engine`.")
    assert f"([Kendall et al., 2018]({SITE}book/bibliography.html \"Alex Kendall. Multi-task. 2018.\"); " in out
    assert "[Pan and Yang, 2010](" in out and "'survey'" in out  # quotes cannot end the link title
    assert f"[Errata]({SITE}book/errata.html)" in out
    assert f"[What is wrong]({SITE}book/errata.html#sec-a)" in out
    assert f"[Exercise 4.2]({SITE}book/ch/page.html#ex-a)" in out
    assert f"[Fig. 4.3]({SITE}book/ch/page.html#fig-a)" in out and "[Figure 4.3](" in out
    assert f"[Eq. 4.5]({SITE}book/ch/page.html#equation-eq-a)" in out
    assert f"[`mtl_tl.engine.fit`]({SITE}book/api.html#mtl_tl.engine.fit)" in out
    assert f"[`a.b`]({SITE}book/api.html#a.c)" in out
    assert f"({SITE}book/api.html#module-mtl_tl.engine)" in out
    assert not make_colab.MYST_LEFT.search(out)


def test_code_is_left_alone():
    text = "Write `` {cite}`key` `` to cite.\n\n```python\nprint(f\"{x}`\")  # {cite}`x`\n```\n\n~~~\n:::{note}\n~~~"
    assert convert(text) == text


def test_exercises_solutions_admonitions_and_figures():
    out = convert(":::{exercise}\n:label: ex-a\nWhat is {eq}`eq-a`?\n:::\n\n"
                  ":::{solution} ex-a\n:class: dropdown\nThe ANSWER, see {cite}`pan2010`.\n:::\n\n"
                  "```{note}\nA note.\n```\n\n"
                  "::::{admonition} Careful\n:class: warning\nNested:\n:::{tip}\nA tip.\n:::\n::::\n\n"
                  "```{figure} img/plot.png\n:name: fig-a\n:alt: a plot\nThe caption.\n```")
    assert out.startswith("**Exercise 4.2**\n\nWhat is [Eq. 4.5](")
    assert "<details>\n<summary>Solution to Exercise 4.2</summary>\n\nThe ANSWER" in out
    assert "> **Note**\n>\n> A note." in out
    assert "> **Careful**\n>\n> Nested:\n> > **Tip**\n> >\n> > A tip." in out
    assert "> ![a plot](https://raw.example.org/repo/main/book/ch/img/plot.png)\n>\n> **Fig. 4.3** The caption." in out
    assert not make_colab.MYST_LEFT.search(out)


def test_solutions_fold_in_a_plain_markdown_renderer():
    rendered = html(":::{exercise}\n:label: ex-a\nQ?\n:::\n\n:::{solution} ex-a\nThe **ANSWER**.\n:::\n")
    answer = rendered.index("<strong>ANSWER</strong>")  # Markdown inside <details> is still rendered
    assert rendered.rindex("<details>", 0, answer) < answer < rendered.index("</details>", answer)
    assert '<a href="https://example.org/book/book/bibliography.html"' in html("See {cite}`pan2010`.")


def test_math_targets_and_links():
    out = convert("(sec-a)=\n## Head\n\n$$\nx = 1\n$$ (eq-a)\n\nSee [there](sec-a), [that](#fig-a), "
                  "[page](../errata.md#top) and [web](https://example.org).")
    assert "(sec-a)=" not in out and "$$\nx = 1 \\tag{4.5}\n$$" in out
    assert f"[there]({SITE}book/errata.html#sec-a)" in out and f"[that]({SITE}book/ch/page.html#fig-a)" in out
    assert f"[page]({SITE}book/errata.html#top)" in out and "[web](https://example.org)" in out


@pytest.mark.parametrize("text, error", [("{term}`x`", "role {term}"), ("{ref}`nowhere`", "nowhere"),
                                         ("{cite}`nobody`", "nobody"), ("{doc}`missing`", "missing"),
                                         (":::{tab-set}\nx\n:::", "directive {tab-set}")])
def test_what_the_converter_does_not_know_fails_loudly(text, error):
    with pytest.raises((ValueError, KeyError), match=re.escape(error)):
        convert(text)


def test_headings_carry_the_site_numbers_once():
    cells = [nbformat.v4.new_markdown_cell("# 4.1 Transfer\n\nText\n\n## Data\n\n```\n# a comment\n```"),
             nbformat.v4.new_code_cell("# not a heading"),
             nbformat.v4.new_markdown_cell("### 4.1.1 Detail\n\n## 3 ways to share\n\n> ## quoted")]
    make_colab.number_headings(cells, "4.1")
    assert cells[0].source == "# 4.1 Transfer\n\nText\n\n## 4.1.1 Data\n\n```\n# a comment\n```"
    assert cells[1].source == "# not a heading"
    assert cells[2].source == "### 4.1.1.1 Detail\n\n## 4.1.2 3 ways to share\n\n> ## quoted"
    unnumbered = [nbformat.v4.new_markdown_cell("# Glossary\n## Terms")]
    make_colab.number_headings(unnumbered, "")
    assert unnumbered[0].source == "# Glossary\n## Terms"
    assert book_index.strip_hand_number("3.10. Scale", "3") == "Scale"
    assert book_index.strip_hand_number("3 ways to share", "4") == "3 ways to share"
    assert book_index.strip_hand_number("Results of 4.1", "4") == "Results of 4.1"


def test_widget_manager_goes_inside_the_colab_block():
    cell = ('# Install\nimport sys\nif "google.colab" in sys.modules:\n    %pip install -q "x"\n\n'
            'print("everywhere")')
    out = make_colab.with_widget_manager(cell)
    assert out.startswith(cell.split("\n\n")[0] + "\n    # ipywidgets 8")
    assert "    output.enable_custom_widget_manager()\n\nprint(\"everywhere\")" in out
    with pytest.raises(ValueError):
        make_colab.with_widget_manager("import sys")


def test_book_numbering_follows_the_toc(tmp_path):
    (tmp_path / "_config.yml").write_text("html:\n  baseurl: https://example.org/b\nrepository:\n"
                                          "  url: https://github.com/o/r\n")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: A\n    numbered: true\n    chapters:\n"
        "      - file: one\n  - caption: B\n    numbered: true\n    chapters:\n      - file: two\n"
        "        sections:\n          - file: two_a\n          - file: two_b\n  - caption: Ref\n"
        "    chapters:\n      - file: ref\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    (tmp_path / "one.md").write_text("# 1 One\n\n## First\n\n(sec-x)=\n## Second\n\n$$\na\n$$ (eq-x)\n")
    (tmp_path / "two.md").write_text("# Two\n")
    (tmp_path / "two_a.md").write_text("# A\n\n:::{exercise}\n:label: ex-x\nQ\n:::\n\n```\n(no)=\n# no\n```\n")
    fig = nbformat.v4.new_code_cell("plot()", metadata={"mystnb": {"figure": {"name": "fig-y", "caption": "c"}}})
    ex = nbformat.v4.new_markdown_cell(":::{exercise}\n:label: ex-y\nQ\n:::")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# B"), fig, ex]),
                   tmp_path / "two_b.ipynb")
    (tmp_path / "ref.md").write_text("# Reference\n")
    index = book_index.build_index(tmp_path)
    assert [(d, p.number) for d, p in index.pages.items()] == [
        ("intro", ""), ("one", "1"), ("two", "2"), ("two_a", "2.1"), ("two_b", "2.2"), ("ref", "")]
    assert index.targets["sec-x"].number == "1.2" and index.targets["sec-x"].title == "Second"
    assert index.targets["eq-x"].number == "1.1" and index.targets["eq-x"].anchor == "equation-eq-x"
    assert index.targets["ex-x"].number == "2.1" and index.targets["ex-y"].number == "2.2"  # one counter per chapter
    assert index.targets["fig-y"].number == "2.1" and "no" not in index.targets
    assert index.url("two_a", "ex-x") == "https://example.org/b/two_a.html#ex-x"


def test_citations_read_from_the_bibliography():
    citations = book_index.read_citations(ROOT / "book" / "references.bib")
    assert citations["pan2010survey"][:2] == ("Pan and Yang", "2010")
    assert citations["kendall2018multi"][:2] == ("Kendall et al.", "2018")
    assert citations["caruana1997multitask"][0] == "Caruana"


def test_the_colab_edition_is_up_to_date():
    assert make_colab.stale() == [], "run `make colab` and commit colab/"


def test_the_colab_edition_has_no_myst_left():
    notebooks = sorted((ROOT / "colab").rglob("*.ipynb"))
    assert len(notebooks) == len(toc_notebooks())
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        assert make_colab.myst_left(nb) == [], path
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path


def test_the_myst_check_finds_myst():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("See {cite}`a`.\n\n:::{note}\nx\n:::"),
                                         nbformat.v4.new_markdown_cell("````{exercise}\nQ\n````")])
    assert make_colab.myst_left(nb) == ["{cite}`", ":::{", "````{"]


def test_the_colab_edition_of_the_real_book():
    for source in toc_notebooks():
        nb = nbformat.read(ROOT / "colab" / source.relative_to(ROOT), as_version=4)
        original = nbformat.read(source, as_version=4)
        install = nb.cells[[c.cell_type for c in nb.cells].index("code")].source
        widgets = any("ipywidgets" in c.source for c in original.cells if c.cell_type == "code")
        assert ("enable_custom_widget_manager()" in install) is widgets, source
        title = nb.cells[0].source.split("\n", 1)[0]
        assert re.match(r"^# \d+(\.\d+)* \D", title), f"{source}: title {title!r} lacks one number"
        solutions = "".join(c.source for c in nb.cells).count("<summary>Solution to Exercise")
        assert solutions == "".join(c.source for c in original.cells).count("{solution}") > 0
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert code[1:] == [c.source for c in original.cells if c.cell_type == "code"][1:], source


def test_readme_links_to_the_colab_edition():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/main/([^)\s]+)", readme)
    assert len(links) == len(toc_notebooks())
    for path in links:
        assert path.startswith("colab/") and (ROOT / path).is_file(), path


def test_the_colab_button_url_moves_into_the_edition():
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import colab_edition

    url = "https://colab.research.google.com/github/o/r/blob/main/./book/ch/page.ipynb"
    assert colab_edition.colab_url(url, "main") == "https://colab.research.google.com/github/o/r/blob/main/colab/book/ch/page.ipynb"
    with pytest.raises(Exception, match="unexpected Colab launch URL"):
        colab_edition.colab_url(url, "dev")
