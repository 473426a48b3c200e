"""Execute each notebook once: nbmake runs copies of the notebooks, the site builds reuse them.

    python scripts/execution_cache.py copies OUT [--stale]  # copies of the toc's notebooks; prints their paths
    python scripts/execution_cache.py store OUT             # the executed copies into the execution cache
    python scripts/execution_cache.py check LOG             # fail if a site build's log shows an execution
    python scripts/execution_cache.py order NB...           # the notebooks, longest stated run time first

`make notebooks` writes fresh copies under _nbmake (nbmake skips anything under a
_build folder), runs nbmake on them with ``--overwrite`` (the committed notebooks stay
output-free), then ``store``s them.
``store`` puts each executed copy into the jupyter-cache that the site build reads
(``execute_notebooks: cache`` in _config.yml), under the hash of the committed notebook's
code, and then looks it up as myst-nb will, so a miss fails here and not in the site.
``make book``, ``make site`` and ``make student`` do the same for the notebooks the cache
cannot serve (``copies --stale``; none after ``make notebooks``), then build and ``check``
the build's log: a site build that executed a notebook itself fails.

The cache record holds what the *Execution status* page shows for a notebook taken
from the cache: when it ran (the end of its last cell) and how long (from its first
cell's start to its last cell's end, from the timings that nbmake's client records in
each cell; the kernel's start-up is not counted).
"""

from __future__ import annotations

import re
import shutil
import sys
from datetime import datetime
from pathlib import Path

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn, JupyterCacheAbstract
from jupyter_cache.cache.db import NbCacheRecord, session_context

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from toc_notebooks import toc_notebooks  # noqa: E402

# Where `jupyter-book build .` looks for executed notebooks: myst-nb's default, the
# folder beside _build/html. make_student.py points the student site at it too.
CACHE = ROOT / "_build" / ".jupyter_cache"
# Notebook metadata that myst-nb merges from a cached notebook into the page.
RUN_METADATA = ("language_info", "widgets")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A notebook's own statement of its cost, in its first cell: "**Run time:** about 80 s ...".
RUN_TIME = re.compile(r"\*\*Run time:\*\*\s*about\s+(\d+(?:\.\d+)?)\s*(s|min)\b")


def read(path: Path) -> nbformat.NotebookNode:
    """A notebook as myst-nb reads it (nbformat 4)."""
    return nbformat.read(path, as_version=4)


def is_cached(notebook: Path, cache: JupyterCacheAbstract) -> bool:
    """True if the site build would take ``notebook``'s outputs from ``cache``."""
    try:
        cache.match_cache_notebook(read(notebook))
    except KeyError:
        return False
    return True


def stated_seconds(notebook: Path) -> float:
    """The quick-profile run time a notebook states in its first cell (0 if it states none)."""
    cells = read(notebook).cells
    match = RUN_TIME.search(cells[0].source) if cells else None
    if match is None:
        return 0.0
    return float(match[1]) * (60 if match[2] == "min" else 1)


def longest_first(notebooks: list[Path]) -> list[Path]:
    """``notebooks`` by stated run time, longest first, so that parallel workers finish together.

    A worker that starts the longest notebook last keeps the other waiting; handing out
    the longest first (LPT scheduling) leaves only short notebooks for the end.
    """
    return sorted(notebooks, key=stated_seconds, reverse=True)


def write_copies(out: Path, notebooks: list[Path], root: Path = ROOT,
                 stale_in: JupyterCacheAbstract | None = None) -> list[Path]:
    """Fresh copies of ``notebooks`` under ``out`` (same paths relative to ``root``).

    With ``stale_in``, only the notebooks that this cache cannot serve are copied. ``out``
    is emptied first, so that ``store`` only sees this run's executions; when there is
    nothing to copy it is left alone (it keeps the last run's executed copies to look at).
    """
    if stale_in is not None:
        notebooks = [notebook for notebook in notebooks if not is_cached(notebook, stale_in)]
    if not notebooks:
        return []
    shutil.rmtree(out, ignore_errors=True)
    written = []
    for notebook in notebooks:
        target = out / notebook.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(notebook, target)
        written.append(target)
    return written


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_window(executed: nbformat.NotebookNode, name: str) -> tuple[datetime, datetime]:
    """When the first code cell started and the last one finished, from nbclient's timings.

    Raises if a non-empty code cell has no timing (it did not run) or shows an error
    (only a cell tagged ``raises-exception`` may, as for nbclient itself).
    """
    starts, ends = [], []
    for index, cell in enumerate(executed.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue  # nbclient skips empty cells
        timing = cell.metadata.get("execution", {})
        if "iopub.status.busy" not in timing or "iopub.status.idle" not in timing:
            raise SystemExit(f"{name}: code cell {index} has no execution timings: the copy was not executed "
                             "(run nbmake on it first)")
        if any(o.output_type == "error" for o in cell.outputs) and \
                "raises-exception" not in cell.metadata.get("tags", []):
            raise SystemExit(f"{name}: code cell {index} failed; a failed run is not stored")
        starts.append(_timestamp(timing["iopub.status.busy"]))
        ends.append(_timestamp(timing["iopub.status.idle"]))
    if not starts:
        raise SystemExit(f"{name}: no code cell ran")
    return min(starts), max(ends)


def store(executed: Path, original: Path, cache: JupyterCacheAbstract) -> NbCacheRecord:
    """Put the executed copy of ``original`` into ``cache``, where the site build will find it.

    The stored notebook is ``original`` with the copy's outputs and execution counts:
    jupyter-cache hashes the code cells with all their metadata, and the copy's cells
    carry nbclient's timings, which the committed notebook (and so the site's lookup)
    does not. The record gets the run's duration and end time for the status page.
    """
    run, source = read(executed), read(original)
    ran = [c for c in run.cells if c.cell_type == "code"]
    committed = [c for c in source.cells if c.cell_type == "code"]
    if [c.source for c in ran] != [c.source for c in committed]:
        raise SystemExit(f"{executed} is not a run of {original}: their code differs "
                         "(was the notebook edited during the run?)")
    started, finished = run_window(run, str(executed))
    for cell, result in zip(committed, ran):
        cell.outputs, cell.execution_count = result.outputs, result.execution_count
    source.metadata.update({key: run.metadata[key] for key in RUN_METADATA if key in run.metadata})
    record = cache.cache_notebook_bundle(
        CacheBundleIn(source, str(original), data={"execution_seconds": (finished - started).total_seconds()}),
        check_validity=False, overwrite=True)
    # jupyter-cache dates a record when it is stored; the status page should say when it ran.
    with session_context(cache.db) as session:
        session.get(NbCacheRecord, record.pk).created = finished
        session.commit()
    if not is_cached(original, cache):
        raise SystemExit(f"{original}: stored, but the cache does not match the committed notebook to it")
    return cache.get_cache_record(record.pk)


def store_all(out: Path, root: Path = ROOT, cache_path: Path = CACHE) -> list[NbCacheRecord]:
    """Store every executed copy under ``out`` (written by ``write_copies``) in the cache."""
    cache = get_cache(cache_path)
    records = []
    for executed in sorted(out.rglob("*.ipynb")):
        original = root / executed.relative_to(out)
        records.append(store(executed, original, cache))
        print(f"stored {original.relative_to(root)}: ran {records[-1].data['execution_seconds']:.2f} s")
    return records


def executions_in(log: str) -> list[str]:
    """The notebooks that a jupyter-book build executed, from its log (myst-nb says so).

    Raises if the log does not show myst-nb's messages at all: then it could not tell.
    """
    log = ANSI.sub("", log)
    if "Using jupyter-cache at" not in log:
        raise SystemExit("this is not the log of a site build with execute_notebooks: cache "
                         "(myst-nb's 'Using jupyter-cache at' line is missing)")
    return [line.split(": Executing notebook")[0] for line in log.splitlines() if ": Executing notebook" in line]


if __name__ == "__main__":
    usage = "usage: execution_cache.py copies OUT [--stale] | store OUT | check LOG | order NB..."
    if len(sys.argv) >= 2 and sys.argv[1] == "order":
        for notebook in longest_first([Path(p) for p in sys.argv[2:]]):
            print(notebook)
        raise SystemExit(0)
    if len(sys.argv) < 3 or sys.argv[1] not in ("copies", "store", "check"):
        raise SystemExit(usage)
    command, path, options = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    if options not in ([], ["--stale"]) or (options and command != "copies"):
        raise SystemExit(usage)
    if command == "copies":
        stale = options == ["--stale"]
        notebooks = toc_notebooks()
        if not notebooks:
            raise SystemExit("_toc.yml lists no notebook")
        for copy in longest_first(write_copies(path, notebooks, stale_in=get_cache(CACHE) if stale else None)):
            print(copy)
    elif command == "store":
        if not store_all(path):
            raise SystemExit(f"no executed notebook under {path}")
    else:
        executed = executions_in(path.read_text(encoding="utf-8", errors="replace"))
        if executed:
            raise SystemExit("the site build executed these notebooks itself, after nbmake had run them "
                             "(their code differs from the cached run's?): " + ", ".join(executed))
        print(f"{path}: the site build executed no notebook; every output came from nbmake's run")
