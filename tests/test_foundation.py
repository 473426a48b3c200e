"""The repository's promises: notebooks in the toc and without outputs, one package set."""

import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from book_index import heading_lines  # noqa: E402
from toc_notebooks import toc_files  # noqa: E402


def _notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_every_notebook_is_in_the_toc():
    listed = {ROOT / (f if f.endswith(".ipynb") else f + ".ipynb") for f in toc_files()}
    orphans = [str(p.relative_to(ROOT)) for p in _notebooks() if p not in listed]
    assert not orphans, f"notebooks missing from _toc.yml: {orphans}"


def test_every_toc_entry_exists():
    missing = [f for f in toc_files()
               if not any((ROOT / (f + s)).exists() for s in ("", ".md", ".ipynb"))]
    assert not missing, f"_toc.yml lists pages that do not exist: {missing}"


def test_notebooks_are_committed_without_outputs():
    dirty = []
    for path in _notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
                dirty.append(str(path.relative_to(ROOT)))
                break
    assert not dirty, f"notebooks with outputs or execution counts (run `make strip`): {dirty}"


def test_every_notebook_imports_the_package_and_states_its_cost():
    for path in _notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        assert "mtl_tl" in code, f"{path.name} does not import mtl_tl"
        first = "".join(nb["cells"][0]["source"])
        assert re.search(r"run time", first, re.I), f"{path.name}: the first cell must state the run time"


def test_titles_and_headings_carry_no_hand_written_number():
    # `numbered: true` in _toc.yml numbers chapters, pages and sections; a number written
    # by hand shows twice ("4.1. 4.1 Transfer learning"). scripts/renumber_titles.py strips them.
    for path in _notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = "".join(nb["cells"][0]["source"]).split("\n", 1)[0]
        assert re.match(r"^# [^\d\s]", first), f"{path.name}: the first line must be '# Title', without a number"
        markdown = ["".join(c["source"]) if c["cell_type"] == "markdown" else "" for c in nb["cells"]]
        numbered = [title for *_, title in heading_lines(markdown) if re.match(r"^\d+(\.\d+)*\.?\s", title)]
        assert not numbered, f"{path.name}: headings numbered by hand (run scripts/renumber_titles.py): {numbered}"


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"pytorch": "torch"}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pypi = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        pypi |= {_name(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            conda |= {_name(r) for r in dep.get("pip", [])}
        else:
            name = _name(dep)
            if name not in ("python", "pip"):
                conda.add(CONDA_TO_PYPI.get(name, name))
    assert conda == pypi, f"only in environment.yml: {sorted(conda - pypi)}; only in pyproject: {sorted(pypi - conda)}"


def test_dependencies_are_ranges_not_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = [r for r in project["dependencies"] if "==" in r]
    assert not pinned, f"pinned dependencies: {pinned}"


def test_config_settings():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["only_build_toc_files"] is True
    assert config["execute"]["timeout"] > 0
    assert "sphinx_exercise" in config["sphinx"]["extra_extensions"]
    assert config["bibtex_bibfiles"] == ["book/references.bib"]
    assert (ROOT / config["bibtex_bibfiles"][0]).exists()
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["format"] == "jb-book"
    assert all(part.get("caption") for part in toc["parts"])
    # The chapters are numbered 1-6 like the article; only the reference matter is not.
    chapters = [p for p in toc["parts"] if p["caption"] != "Reference"]
    assert len(chapters) >= 3 and all(p.get("numbered") for p in chapters)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make book" in readme


def test_notebooks_open_on_colab_and_end_with_exercises():
    for path in _notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        assert nb["metadata"].get("accelerator") == "GPU", f"{path.name}: no Colab GPU hint in the metadata"
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        install = "".join(code[0]["source"])
        assert "google.colab" in install and "pip install" in install, f"{path.name}: no Colab install cell first"
        assert "hide-input" in code[0]["metadata"].get("tags", [])
        assert any("setup(" in "".join(c["source"]) for c in code[1:3]), f"{path.name}: no setup() call"
        text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert "## Summary" in text and "## Exercises" in text, f"{path.name}: no summary or exercises"
        assert 3 <= text.count("{exercise}") <= 5 and text.count("{solution}") == text.count("{exercise}")
        answers = [i for i, c in enumerate(nb["cells"]) if "solution" in c["metadata"].get("tags", [])]
        assert answers, f"{path.name}: no coding exercise (a code cell tagged 'solution')"
        following = "".join(nb["cells"][answers[0] + 1]["source"]).lower()
        assert "self-check" in following, f"{path.name}: the coding exercise has no self-check cell after it"


def test_every_module_can_be_read_in_one_sitting():
    lengths = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
               for p in (ROOT / "src" / "mtl_tl").rglob("*.py")}
    assert len(lengths) >= 15
    too_long = {path: n for path, n in lengths.items() if n > 600}
    assert not too_long, f"split these modules (CONTRIBUTING.md: one concept per module): {too_long}"


def test_split_modules_are_re_exported_where_the_book_imports_them():
    from mtl_tl import gradient_surgery, multitask, study, weighting
    from mtl_tl.study import decisions, design, result, runner

    for name in ("EqualWeighting", "FixedWeights", "UncertaintyWeighting", "GradNorm", "DWA", "dwa_weights"):
        assert getattr(multitask, name) is getattr(weighting, name)
    for name in ("PCGrad", "pcgrad_combine", "gradient_cosine", "ConflictMonitor"):
        assert getattr(multitask, name) is getattr(gradient_surgery, name)
    assert study.run_study is runner.run_study and study.StudyResult is result.StudyResult
    assert study.StudyConfig is design.StudyConfig and study.derive_rules is decisions.derive_rules
    for module in (multitask, study, weighting, gradient_surgery):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__


def test_api_reference_documents_every_public_module():
    text = (ROOT / "book" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. automodule:: (mtl_tl[\w.]*)$", text, flags=re.M))
    package = ROOT / "src" / "mtl_tl"
    public = {f"mtl_tl.{p.stem}" for p in package.glob("*.py") if not p.stem.startswith("_")}
    public |= {f"mtl_tl.{p.parent.name}" for p in package.glob("*/__init__.py")}
    assert public - documented == set(), "add these modules to book/api.md"
    assert "book/api" in (ROOT / "_toc.yml").read_text(encoding="utf-8")
