"""`make student`: solutions leave the notebooks, and the student site hides them."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_student  # noqa: E402

PAGE = """# Page

:::{exercise}
:label: ex-demo
What is 2 + 2?
:::

:::{solution} ex-demo
:class: dropdown
The answer is FOUR-SECRET.
:::

```{solution} ex-demo
Another SECRET-BACKTICK answer.
```

After the solutions.
"""


def test_strip_solutions_keeps_exercises():
    out = make_student.strip_solutions(PAGE)
    assert "SECRET" not in out and "{solution}" not in out
    assert ":::{exercise}" in out and "What is 2 + 2?" in out and "After the solutions." in out


def test_student_notebook_stubs_tagged_answers():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(PAGE),
        nbformat.v4.new_code_cell("# Exercise 1: the projection\nanswer = 42", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("assert answer == 42", execution_count=3,
                                  outputs=[nbformat.v4.new_output("stream", text="x")]),
    ])
    student = make_student.student_notebook(nb)
    assert "SECRET" not in student.cells[0].source
    code = make_student.stub('# Edit me.\ndef f(a,\n      b):\n    """Sum."""\n    c = a + b\n\n    return c\n\nx = f(1, 2)\n')
    assert "def f(a,\n      b):" in code and '"""Sum."""' in code and "raise NotImplementedError" in code
    assert "c = a + b" not in code and "x = f(1, 2)" not in code and code.startswith("# Edit me.")
    assert "answer = 42" not in student.cells[1].source
    assert student.cells[1].source.startswith("# Exercise 1: the projection")
    assert student.cells[2].source == "assert answer == 42" and student.cells[2].outputs == []
    assert "answer = 42" in nb.cells[1].source  # the original is untouched


def test_real_book_student_copies(tmp_path):
    written = make_student.write_notebooks(tmp_path)
    notebooks = [p for p in written if p.suffix == ".ipynb"]
    assert notebooks, "the toc lists no notebook"
    for path in written:
        text = path.read_text(encoding="utf-8")
        assert "{solution}" not in text, path
    originals = [ROOT / p.relative_to(tmp_path) for p in notebooks]
    assert sum(p.read_text().count("{exercise}") for p in originals) == sum(
        p.read_text().count("{exercise}") for p in notebooks)


def test_student_config_hides_solutions(tmp_path):
    config = yaml.safe_load(make_student.student_config(tmp_path / "c.yml").read_text())
    assert config["sphinx"]["config"]["hide_solutions"] is True
    assert config["title"].endswith("(student edition)")
    assert config["sphinx"]["extra_extensions"] == yaml.safe_load((ROOT / "_config.yml").read_text())[
        "sphinx"]["extra_extensions"]
    # The config is written elsewhere, so its local extensions must not be relative paths.
    local = config["sphinx"]["local_extensions"]
    assert "student_edition" in local and all(Path(p).is_absolute() and Path(p).is_dir() for p in local.values())


def test_student_site_hides_solutions(tmp_path):
    (tmp_path / "page.md").write_text(PAGE.replace("\n```{solution} ex-demo\nAnother SECRET-BACKTICK answer.\n```\n",
                                                   ""))
    answer = nbformat.v4.new_code_cell("answer = 'CODE-SECRET'", metadata={"tags": ["solution"]})
    check = nbformat.v4.new_code_cell("assert answer")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Coding"), answer, check])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "coding.ipynb")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: page\nchapters:\n  - file: coding\n")
    for hide in (False, True):
        (tmp_path / "_config.yml").write_text(yaml.safe_dump({
            "title": "t", "execute": {"execute_notebooks": "off"},
            "sphinx": {"extra_extensions": ["sphinx_exercise"], "config": {"hide_solutions": hide},
                       "local_extensions": {"student_edition": str(ROOT / "book" / "_ext")}},
            "parse": {"myst_enable_extensions": ["colon_fence"]},
        }))
        jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
        done = subprocess.run([jb, "build", str(tmp_path), "-W", "--all"], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout[-2000:]
        html = (tmp_path / "_build" / "html" / "page.html").read_text()
        coding = (tmp_path / "_build" / "html" / "coding.html").read_text()
        assert "What is 2 + 2?" in html and "assert</span>" in coding  # the self-check cell stays
        # The teacher's site shows both answers; the student's site neither.
        assert ("FOUR-SECRET" in html) is (not hide) and ("CODE-SECRET" in coding) is (not hide)
        assert ("not shown in the student edition" in coding) is hide
    assert make_student.check_site(tmp_path / "_build" / "html")


def test_check_site_finds_a_leaked_solution(tmp_path):
    (tmp_path / "ok.html").write_text('<div class="cell docutils container">x</div>')
    assert make_student.check_site(tmp_path) == [tmp_path / "ok.html"]
    (tmp_path / "leak.html").write_text('<div class="cell tag_solution docutils container">answer</div>')
    with pytest.raises(SystemExit, match="leak.html"):
        make_student.check_site(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no HTML pages"):
        make_student.check_site(empty)
