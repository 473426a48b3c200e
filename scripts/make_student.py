"""Make the student edition: notebooks without solutions, and a site with them hidden.

    python scripts/make_student.py notebooks OUT_DIR   # copies of the toc's pages, solutions removed
    python scripts/make_student.py config OUT_FILE     # _config.yml with hide_solutions: true
    python scripts/make_student.py check HTML_DIR      # fail if a built page shows a solution

`make student` runs the first two, builds the student site into _build/student/_build/html
and checks it.
What is removed: every sphinx-exercise ``solution`` block (``:::{solution}`` or
```` ```{solution} ````) in markdown, and the body of every code cell tagged
``solution`` (a coding exercise's reference answer), which becomes a short stub that
tells the student what to write. Exercises, self-check cells and everything else stay.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from toc_notebooks import toc_files  # noqa: E402

# A solution directive: an opening fence of 3+ colons or backticks, up to the same fence.
SOLUTION = re.compile(r"^(?P<fence>:{3,}|`{3,})\{solution\}.*?^(?P=fence)[ \t]*$\n?", re.M | re.S)
STUB = (
    "# Exercise: write your answer in this cell, then run the self-check cell below.\n"
    "# (The teacher's edition of the book has a reference answer here.)\n"
)


def strip_solutions(text: str) -> str:
    """``text`` without its solution directives."""
    return SOLUTION.sub("", text)


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` for students: solutions removed, reference answers stubbed, no outputs."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = strip_solutions(cell.source)
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if "solution" in cell.metadata.get("tags", []):
                cell.source = stub(cell.source)
    return nb


def stub(source: str) -> str:
    """A reference answer reduced to what the student needs: its comments, the signatures
    and one-line docstrings of its functions (whose bodies raise), and a note."""
    lines, out, i = source.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            out.append(line)
        elif line.startswith("def "):
            while not lines[i].rstrip().endswith(":"):  # a signature over several lines
                out.append(lines[i])
                i += 1
            out.append(lines[i])
            body = [b for b in lines[i + 1:] if b.strip()]
            if body and body[0].strip().startswith('"""') and body[0].strip().endswith('"""') \
                    and len(body[0].strip()) > 3:
                out.append(body[0])
            out.append('    raise NotImplementedError("write your answer here")')
            while i + 1 < len(lines) and (not lines[i + 1].strip() or lines[i + 1].startswith((" ", "\t"))):
                i += 1
            out.append("")
        i += 1
    return "\n".join(out).rstrip() + "\n" + STUB


def write_notebooks(out: Path) -> list[Path]:
    """Student copies of every page in _toc.yml under ``out`` (same relative paths)."""
    written = []
    for entry in toc_files():
        for suffix in (".ipynb", ".md"):
            source = ROOT / (entry + suffix)
            if not source.exists():
                continue
            target = out / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            if suffix == ".ipynb":
                nbformat.write(student_notebook(nbformat.read(source, as_version=4)), target)
            else:
                target.write_text(strip_solutions(source.read_text(encoding="utf-8")), encoding="utf-8")
            written.append(target)
    shutil.copy2(ROOT / "book" / "references.bib", out / "book" / "references.bib")
    return written


def student_config(out: Path) -> Path:
    """The book's _config.yml with solutions hidden and the title marked."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config["title"] = f"{config['title']} (student edition)"
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    # The config file lives elsewhere, and jupyter-book resolves local extensions
    # relative to it: point them at the repository's own folders.
    local = config["sphinx"].get("local_extensions") or {}
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in local.items()}
    # Same notebooks, same code: reuse the teacher's site's execution cache.
    config.setdefault("execute", {})["cache"] = str(ROOT / "_build" / ".jupyter_cache")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def check_site(html_dir: Path) -> list[Path]:
    """The student site's pages; raises if one still shows a solution or a coding answer."""
    pages = sorted(html_dir.rglob("*.html"))
    if not pages:
        raise SystemExit(f"no HTML pages under {html_dir}; build the student site first (make student)")
    leaks = [p for p in pages if re.search(r'class="[^"]*(tag_solution|solution dropdown)', p.read_text(errors="ignore"))]
    if leaks:
        raise SystemExit("the student site still shows solutions in: " + ", ".join(str(p) for p in leaks))
    return pages


if __name__ == "__main__":
    commands = ("notebooks", "config", "check")
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        raise SystemExit("usage: make_student.py notebooks OUT_DIR | config OUT_FILE | check HTML_DIR")
    if sys.argv[1] == "notebooks":
        files = write_notebooks(Path(sys.argv[2]))
        print(f"wrote {len(files)} student pages under {sys.argv[2]}")
    elif sys.argv[1] == "config":
        print(f"wrote {student_config(Path(sys.argv[2]))}")
    else:
        print(f"checked {len(check_site(Path(sys.argv[2])))} student pages: no solution shown")
