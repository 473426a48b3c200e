"""Execute the book's notebooks from two source trees and compare their text outputs.

A refactor of ``mtl_tl`` must not move a single printed number. This script proves it:

    python scripts/compare_outputs.py run  TREE  OUTDIR   # execute TREE's notebooks into OUTDIR
    python scripts/compare_outputs.py diff OLD   NEW      # compare two OUTDIRs cell by cell
    python scripts/compare_outputs.py diff OLD NEW --rename old=new ...

``run`` executes every notebook that TREE's ``_toc.yml`` lists, in the quick profile on
the CPU, with TREE's own ``src`` first on the kernel's path (so a worktree of an older
commit runs its own package), and writes the executed notebooks to OUTDIR. ``diff``
compares, cell by cell (matched by cell id; added and removed cells are listed), every text output (streams, ``text/plain`` results, errors);
images and HTML are skipped, and times (``12.3 s``) are masked. ``--rename``
pairs are applied to the old text before comparing: renamed identifiers are the only
difference a refactor may show, and the report lists every line such a rename touched.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toc_notebooks import toc_files  # noqa: E402

# What legitimately changes between two runs of the same code: measured times, which
# are masked (the rest of the line is still compared), and progress bars, which are dropped.
TIME = re.compile(r"\d+(\.\d+)?\s*(s|ms|seconds?|min)\b")
PROGRESS = re.compile(r"it/s|s/it")
TMPDIR = re.compile(r"/tmp/tmp\w+")
# Cells that print a table with a wall-clock "seconds" column (by nbformat cell id): in
# these, a line may differ from the old one in one number, that column, and nowhere else.
TIMED_CELLS = {
    "fa2cf4d1": "4.2, cost table (seconds per seed)",
    "45acbf41": "4.2, try_strategy row (seconds)",
    "b6fce361": "4.3, the study's first rows (seconds per run)",
    "b3d2f82a": "4.3, compute table (seconds per method)",
}


def notebooks(tree: Path) -> list[Path]:
    """The notebooks that ``tree``'s table of contents lists, in reading order."""
    found = []
    for entry in toc_files(tree / "_toc.yml"):
        path = tree / (entry if entry.endswith(".ipynb") else entry + ".ipynb")
        if path.exists():
            found.append(path)
    return found


def execute(path: Path, tree: Path, out: Path) -> tuple[str, float]:
    """Execute one notebook in its own folder (``run`` put ``tree/src`` first on the path)."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    failure = ""
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as err:  # keep what ran: the outputs show where and why
        failure = f" FAILED: {str(err).strip().splitlines()[-1]}"
    target = out / path.relative_to(tree)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return str(path.relative_to(tree)) + failure, time.perf_counter() - start


def run(tree: Path, out: Path, workers: int) -> None:
    os.environ.update(MTL_TL_PROFILE="quick", MTL_TL_DEVICE="cpu", MTL_TL_QUIET="1", MPLBACKEND="Agg")
    # The kernels inherit it: the tree's own package comes first, whatever is installed.
    os.environ["PYTHONPATH"] = f"{tree / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    paths = notebooks(tree)
    if not paths:
        raise SystemExit(f"{tree}/_toc.yml lists no notebook")
    with ThreadPoolExecutor(workers) as pool:
        futures = []
        for path in paths:
            futures.append(pool.submit(execute, path, tree, out))
            time.sleep(3)  # kernels started together can collide on ZMQ ports
        for future in futures:
            name, seconds = future.result()
            print(f"{name}: {seconds:.1f} s")


def text_outputs(cell: dict) -> list[str]:
    """The cell's text outputs as lines, without lines that report times."""
    lines: list[str] = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            text = output["text"]
        elif output["output_type"] in ("execute_result", "display_data"):
            text = output.get("data", {}).get("text/plain", "")
            if "image/png" in output.get("data", {}) or "text/html" in output.get("data", {}):
                text = re.sub(r"<Figure size .*?>|<IPython.core.display.*?>", "", text)
        elif output["output_type"] == "error":
            text = f"{output['ename']}: {output['evalue']}"
        else:
            continue
        text = "".join(text) if isinstance(text, list) else text
        lines += [TMPDIR.sub("<tmpdir>", TIME.sub("<time>", line)) for line in text.splitlines()
                  if line.strip() and not PROGRESS.search(line)]
    return lines


def numbers_apart(a: str, b: str) -> int | None:
    """How many tokens two lines differ in, if every differing token is a number; else None."""
    ta, tb = a.split(), b.split()
    if len(ta) != len(tb):
        return None
    apart = [(x, y) for x, y in zip(ta, tb) if x != y]
    if not all(re.fullmatch(r"[-+]?\d+(\.\d+)?", v) for pair in apart for v in pair):
        return None
    return len(apart)


def same_but_timing(a: str, b: str, timed_cell: bool) -> bool:
    """True when two output lines differ only in what a clock measured.

    A line that names a time (``seconds``, ``speed-up``, a masked ``<time>``) may differ
    in its numbers; in a table with a seconds column (``TIMED_CELLS``), a row may differ
    in one number, that column.
    """
    apart = numbers_apart(a, b)
    if apart is None:
        return False
    if any(word in a for word in ("seconds", "speed-up", "<time>")):
        return True
    return timed_cell and apart <= 1


def diff(old: Path, new: Path, renames: list[tuple[str, str]]) -> int:
    """Print every differing cell; return the number of differences."""
    differences = renamed = cells = 0
    for path in sorted(old.rglob("*.ipynb")):
        rel = path.relative_to(old)
        if not (new / rel).exists():
            print(f"{rel}: missing in {new}")
            differences += 1
            continue
        a, b = nbformat.read(path, as_version=4), nbformat.read(new / rel, as_version=4)
        # Cells are matched by their nbformat id, so a cell added or removed by the change
        # is listed as such instead of shifting every later comparison.
        code_a = {c.id: c for c in a.cells if c.cell_type == "code"}
        code_b = {c.id: c for c in b.cells if c.cell_type == "code"}
        for cell_id in [i for i in code_a if i not in code_b]:
            print(f"{rel}: code cell {cell_id} removed (its output before: {text_outputs(code_a[cell_id])[:3]})")
        for cell_id in [i for i in code_b if i not in code_a]:
            print(f"{rel}: code cell {cell_id} added (its output: {text_outputs(code_b[cell_id])[:3]})")
        for cell_id in [i for i in code_a if i in code_b]:
            cells += 1
            lines_a, lines_b = text_outputs(code_a[cell_id]), text_outputs(code_b[cell_id])
            mapped = []
            for line in lines_a:
                new_line = line
                for before, after in renames:
                    new_line = new_line.replace(before, after)
                renamed += new_line != line
                mapped.append(new_line)
            if len(mapped) == len(lines_b):
                timed = cell_id in TIMED_CELLS
                mapped = [lb if same_but_timing(la, lb, timed) else la for la, lb in zip(mapped, lines_b)]
            if mapped != lines_b:
                differences += 1
                print(f"--- {rel}, code cell {cell_id}:")
                for la, lb in zip(mapped + [""] * len(lines_b), lines_b + [""] * len(mapped)):
                    if la != lb:
                        print(f"  before: {la}\n  after:  {lb}")
    print(f"{cells} code cells compared, {differences} differ, {renamed} line(s) differ only by a rename")
    return differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute a tree's notebooks into a folder")
    p_run.add_argument("tree", type=Path)
    p_run.add_argument("out", type=Path)
    p_run.add_argument("--workers", type=int, default=2)
    p_diff = sub.add_parser("diff", help="compare two folders of executed notebooks")
    p_diff.add_argument("old", type=Path)
    p_diff.add_argument("new", type=Path)
    p_diff.add_argument("--rename", action="append", default=[], metavar="OLD=NEW")
    args = parser.parse_args()
    if args.command == "run":
        run(args.tree.resolve(), args.out.resolve(), args.workers)
        return 0
    renames = [tuple(r.split("=", 1)) for r in args.rename]
    return 1 if diff(args.old, args.new, renames) else 0


if __name__ == "__main__":
    sys.exit(main())
