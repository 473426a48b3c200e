"""Each notebook executes once: the site build takes nbmake's outputs from the execution cache."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import execution_cache  # noqa: E402
from toc_notebooks import toc_notebooks  # noqa: E402

STATUS = "# Status\n\n```{nb-exec-table}\n```\n"


def _notebook(*sources: str) -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_markdown_cell("# Tiny")]
    cells += [nbformat.v4.new_code_cell(s, metadata={"tags": ["hide-input"]} if i == 0 else {})
              for i, s in enumerate(sources)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _tiny_book(root: Path, cache: Path) -> Path:
    nbformat.write(_notebook("x = 6 * 7", "print('answer', x)"), root / "tiny.ipynb")
    (root / "status.md").write_text(STATUS)
    (root / "_toc.yml").write_text("format: jb-book\nroot: tiny\nchapters:\n  - file: status\n")
    (root / "_config.yml").write_text(yaml.safe_dump({
        "title": "t", "only_build_toc_files": True, "exclude_patterns": ["_nbmake"],
        "execute": {"execute_notebooks": "cache", "cache": str(cache)},
    }))
    return root / "tiny.ipynb"


def _build(root: Path) -> str:
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    done = subprocess.run([jb, "build", str(root), "-n", "-W"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr


def test_an_nbmake_run_is_what_the_site_shows(tmp_path):
    cache_path = tmp_path / "cache"
    notebook = _tiny_book(tmp_path, cache_path)
    cache = get_cache(cache_path)
    copies = execution_cache.write_copies(tmp_path / "_nbmake", [notebook], tmp_path, stale_in=cache)
    assert copies == [tmp_path / "_nbmake" / "tiny.ipynb"]
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", "--overwrite", "-q", "-p", "no:cacheprovider",
                           str(copies[0])], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    assert nbformat.read(notebook, as_version=4).cells[2].outputs == []  # the original stays output-free

    [record] = execution_cache.store_all(tmp_path / "_nbmake", tmp_path, cache_path)
    seconds = record.data["execution_seconds"]
    assert 0 < seconds < 60
    assert execution_cache.write_copies(tmp_path / "_nbmake", [notebook], tmp_path, stale_in=cache) == []

    log = _build(tmp_path)
    assert execution_cache.executions_in(log) == [] and "Using cached notebook" in log
    page = (tmp_path / "_build" / "html" / "tiny.html").read_text()
    assert "answer 42" in page
    # The status page shows the nbmake run: its end time and duration, taken from the cache.
    status = (tmp_path / "_build" / "html" / "status.html").read_text()
    assert record.created.strftime("%Y-%m-%d %H:%M") in status and f">{round(seconds, 2)}<" in status

    # Changed code: the cache no longer serves the notebook, and a build that runs it is caught.
    nbformat.write(_notebook("x = 6 * 9", "print('answer', x)"), notebook)
    assert execution_cache.write_copies(tmp_path / "_nbmake", [notebook], tmp_path, stale_in=cache) == copies
    assert execution_cache.executions_in(_build(tmp_path)) == [str(notebook)]


def test_store_takes_only_a_finished_run_of_the_same_code(tmp_path):
    original = tmp_path / "a.ipynb"
    nbformat.write(_notebook("x = 1", "print(x)"), original)
    cache = get_cache(tmp_path / "cache")
    executed = tmp_path / "run" / "a.ipynb"
    executed.parent.mkdir()

    def run(nb: nbformat.NotebookNode, error_in: int | None = None) -> None:
        for count, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            cell.execution_count = count + 1
            cell.metadata["execution"] = {"iopub.status.busy": f"2026-01-01T10:00:0{count}.000000Z",
                                          "iopub.status.idle": f"2026-01-01T10:00:0{count}.500000Z"}
            cell.outputs = [nbformat.v4.new_output("error", ename="E", evalue="", traceback=[])
                            if count == error_in else nbformat.v4.new_output("stream", text=f"{count}\n")]
        nbformat.write(nb, executed)

    nbformat.write(_notebook("x = 1", "print(x)"), executed)
    with pytest.raises(SystemExit, match="no execution timings"):
        execution_cache.store(executed, original, cache)
    run(_notebook("x = 2", "print(x)"))
    with pytest.raises(SystemExit, match="code differs"):
        execution_cache.store(executed, original, cache)
    run(_notebook("x = 1", "print(x)"), error_in=1)
    with pytest.raises(SystemExit, match="code cell 2 failed"):
        execution_cache.store(executed, original, cache)
    assert not execution_cache.is_cached(original, cache)

    run(_notebook("x = 1", "print(x)"))
    record = execution_cache.store(executed, original, cache)
    assert record.data["execution_seconds"] == pytest.approx(1.5)
    assert record.created.strftime("%H:%M:%S") == "10:00:01"
    assert execution_cache.is_cached(original, cache)


def test_every_book_notebook_is_found_after_its_run(tmp_path):
    # The real notebooks' metadata (tags, cell ids, widgets) must hash the same once run.
    cache = get_cache(tmp_path / "cache")
    notebooks = toc_notebooks()
    assert notebooks
    for copy in execution_cache.write_copies(tmp_path / "run", notebooks):
        nb = nbformat.read(copy, as_version=4)
        for count, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            cell.execution_count = count + 1
            cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T10:00:00Z",
                                          "iopub.status.idle": "2026-01-01T10:00:09Z"}
            cell.outputs = [nbformat.v4.new_output("stream", text="ran\n")]
        nb.metadata["language_info"] = {"name": "python"}
        nbformat.write(nb, copy)
    records = execution_cache.store_all(tmp_path / "run", ROOT, tmp_path / "cache")
    assert len(records) == len(notebooks)
    assert all(execution_cache.is_cached(notebook, cache) for notebook in notebooks)


def test_a_build_log_tells_what_the_build_executed():
    cached = ("Using jupyter-cache at: /b/_build/.jupyter_cache\n"
              "\x1b[01m/b/book/a.ipynb: Using cached notebook: ID=1 [mystnb]\x1b[39;49;00m\n")
    assert execution_cache.executions_in(cached) == []
    ran = cached + "/b/book/c.ipynb: Executing notebook using local CWD [mystnb]\n"
    assert execution_cache.executions_in(ran) == ["/b/book/c.ipynb"]
    with pytest.raises(SystemExit, match="not the log of a site build"):
        execution_cache.executions_in("build succeeded.\n")


def test_notebooks_are_handed_out_longest_first(tmp_path):
    """Parallel workers finish together when the longest notebooks start first (LPT)."""
    stated = {"short": "about 15 s on a 2-core CPU", "long": "about 2 min on a 2-core CPU",
              "middle": "about 70 s on a 2-core CPU"}
    paths = []
    for name, text in stated.items():
        nb = _notebook("1 + 1")
        nb.cells[0].source = f"# {name}\n\n**Run time:** {text} (quick profile)."
        paths.append(tmp_path / f"{name}.ipynb")
        nbformat.write(nb, paths[-1])
    silent = tmp_path / "silent.ipynb"
    nbformat.write(_notebook("1 + 1"), silent)
    assert execution_cache.stated_seconds(paths[1]) == 120.0
    assert execution_cache.stated_seconds(silent) == 0.0
    assert [p.stem for p in execution_cache.longest_first([silent, *paths])] == ["long", "middle", "short", "silent"]
    # Every notebook of the book states its run time, so the order means something there.
    assert all(execution_cache.stated_seconds(nb) > 0 for nb in toc_notebooks())


def test_robust_copies_get_their_own_seed_base(tmp_path, monkeypatch):
    import notebook_runs

    robust = tmp_path / "_nbmake_robust"
    monkeypatch.setattr(notebook_runs, "_OWN_SEED_BASE", None)
    monkeypatch.setenv("MTL_TL_ROBUST_DIR", str(robust))
    monkeypatch.setenv("MTL_TL_ROBUST_SEED_BASE", "1000")
    assert notebook_runs.seed_base_for(robust / "book" / "a.ipynb") == "1000"
    assert notebook_runs.seed_base_for(tmp_path / "_nbmake" / "book" / "a.ipynb") is None
    monkeypatch.setattr(notebook_runs, "_OWN_SEED_BASE", "7")
    assert notebook_runs.seed_base_for(tmp_path / "_nbmake" / "book" / "a.ipynb") == "7"
    monkeypatch.delenv("MTL_TL_ROBUST_DIR")
    assert notebook_runs.seed_base_for(robust / "book" / "a.ipynb") == "7"
