"""Print the notebooks that _toc.yml lists, one path per line (used by `make test`)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def toc_files(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """Every `file:` entry of a jupyter-book `_toc.yml`, in reading order, without suffix."""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    found.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def toc_notebooks() -> list[Path]:
    """The `.ipynb` files among the table of contents' entries."""
    paths = []
    for entry in toc_files():
        path = ROOT / (entry if entry.endswith(".ipynb") else entry + ".ipynb")
        if path.exists():
            paths.append(path)
    return paths


if __name__ == "__main__":
    for nb in toc_notebooks():
        sys.stdout.write(f"{nb.relative_to(ROOT)}\n")
