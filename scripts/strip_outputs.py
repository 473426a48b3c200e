"""Remove outputs and execution counts from notebooks, in place (`make strip`)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def strip(path: Path) -> bool:
    """Strip one notebook; True if it changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            changed = True
        cell["outputs"] = []
        cell["execution_count"] = None
        for key in ("execution", "collapsed", "scrolled"):
            if key in cell.get("metadata", {}):
                del cell["metadata"][key]
                changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


if __name__ == "__main__":
    roots = [Path(p) for p in sys.argv[1:]] or [Path("book")]
    for root in roots:
        for nb_path in sorted(root.rglob("*.ipynb")):
            if ".ipynb_checkpoints" not in nb_path.parts and strip(nb_path):
                print(f"stripped {nb_path}")
