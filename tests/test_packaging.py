"""The repo's own hygiene: one source of truth for dependencies, notebooks committed clean and well-formed."""

import re

import nbformat
import pytest
import tomllib
import yaml

from orsalib.paths import NOTEBOOKS_DIR, REPO_ROOT

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
STANDARD = ("profile", "data_root", "run_name", "seed", "device")


def test_environment_yml_defers_to_pyproject():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pips = [d for d in deps if isinstance(d, dict)]
    assert sorted(c.split("=")[0] for c in conda) == ["pip", "python"], "declare packages in pyproject.toml only"
    assert pips == [{"pip": ["-e .[dev]"]}]
    py = next(c for c in conda if c.startswith("python"))
    req = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    lo = tuple(int(x) for x in re.search(r">=\s*(\d+)\.(\d+)", req).groups())
    assert tuple(int(x) for x in py.split("=")[1].split(".")[:2]) >= lo


def test_pyproject_lists_the_design_card_stack():
    proj = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ]", d)[0].lower() for d in proj["dependencies"]}
    for needed in ("torch", "torchvision", "timm", "fvcore", "papermill", "jupyterlab", "ipykernel", "ipywidgets",
                   "plotly", "scikit-learn", "scipy", "pillow", "numpy", "pyyaml", "tqdm"):
        assert needed in names
    assert proj["scripts"]["orsa"] == "orsalib.cli:main"


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ is empty"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    nb = nbformat.read(str(path), as_version=4)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert not c.outputs, f"{path.name} cell {i} has outputs: clear them before committing"
            assert c.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shape(path):
    assert re.fullmatch(r"\d\d_[a-z0-9]+(_[a-z0-9]+)*\.ipynb", path.name), "name notebooks NN_verb_object.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    assert nb.cells[0].cell_type == "markdown", "first cell: title, purpose, inputs, outputs"
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    src = tagged[0].source
    for name in STANDARD:
        assert re.search(rf"^{name}\s*:\s*\w+\s*=", src, re.M), f"{path.name}: parameters cell lacks typed `{name}`"
    assert 'device: str = "auto"' in src
    joined = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "sys.path" not in joined, "install the package (pip install -e .); never edit sys.path"
    assert "record_result(" in joined, "a notebook ends by recording its headline results"
