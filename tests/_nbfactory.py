"""Build small notebooks for runbook tests."""

from pathlib import Path

import nbformat


def make_notebook(path: Path, cells: list[str], params: str | None = None) -> Path:
    params = params or 'profile: str = "smoke"\nrun_name: str = "default"\nseed: int = 0\ndevice: str = "auto"'
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# test notebook")]
    pc = nbformat.v4.new_code_cell(params)
    pc.metadata["tags"] = ["parameters"]
    nb.cells.append(pc)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "orsa", "display_name": "Python (orsa workbook)", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
