"""Progress and logs of executed notebooks: at most one progress display per training, a line per epoch, the
redraws of a bar reduced to its last frame, an HTML rendering beside each executed notebook."""

from __future__ import annotations

import json
import re

import pytest
from _nbfactory import make_notebook

from orsalib import runbook

#: a tqdm frame ("desc:  45%|####      | 38/84 [...]")
BAR = re.compile(r"\d+%\|")

TRAIN_TWICE = (
    "from orsalib.config import load_profile\n"
    "from orsalib.experiments.fer import train_fer\n"
    "for s in (0, 1):\n"
    "    cfg = load_profile('smoke', {'train.epochs': 2, 'train.max_steps_per_epoch': 3}, run_name=run_name, seed=s)\n"
    "    train_fer(cfg, run_dir=f'{OUT}/run{s}', existing='overwrite')"
)


def progress_displays(executed) -> list[str]:
    """Every progress display of an executed notebook: each line of a stream output holding a bar frame (a bar
    redrawn in place counts once per frame left in the file) and each widget display."""
    found = []
    for cell in json.loads(executed.read_text(encoding="utf-8"))["cells"]:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                text = "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
                found += [f for line in text.split("\n") for f in line.split("\r") if BAR.search(f)]
            elif "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                found.append("widget")
    return found


def test_tidy_keeps_the_last_frame_of_a_bar_and_merges_blocks(tmp_path):
    nb = make_notebook(tmp_path / "10_x.ipynb", ["pass"])
    data = json.loads(nb.read_text())
    data["cells"][-1]["outputs"] = [
        {"output_type": "stream", "name": "stderr", "text": "\rpriors:   0%|   | 0/84"},
        {"output_type": "stream", "name": "stderr", "text": "\rpriors:  50%|#  | 42/84\rpriors: 100%|###| 84/84"},
        {"output_type": "stream", "name": "stderr", "text": "\n\n"},
        {"output_type": "stream", "name": "stdout", "text": ["epoch 1/2 | loss 1.0\n", "epoch 2/2 | loss 0.9\n"]},
        {"output_type": "stream", "name": "stderr", "text": "\n"},
        {"output_type": "display_data", "data": {"text/plain": "figure"}, "metadata": {}},
    ]
    nb.write_text(json.dumps(data))
    assert runbook.tidy_outputs(nb) == 3
    outs = json.loads(nb.read_text())["cells"][-1]["outputs"]
    assert [o.get("name") for o in outs] == ["stderr", "stdout", None]
    assert outs[0]["text"] == "priors: 100%|###| 84/84\n"
    assert outs[1]["text"] == "epoch 1/2 | loss 1.0\nepoch 2/2 | loss 0.9\n"
    assert progress_displays(nb) == ["priors: 100%|###| 84/84"]


def test_tidy_drops_unfinished_frames_of_a_bar_redrawn_between_prints(tmp_path):
    nb = make_notebook(tmp_path / "10_y.ipynb", ["pass"])
    data = json.loads(nb.read_text())
    outs = []
    for k in range(3):
        outs += [{"output_type": "stream", "name": "stderr", "text": f"\rstudy:  {33 * k}%|#  | {k}/3"},
                 {"output_type": "stream", "name": "stdout", "text": f"run {k} done\n"}]  # fmt: skip
    outs.append({"output_type": "stream", "name": "stderr", "text": "\rstudy: 100%|###| 3/3\n"})
    data["cells"][-1]["outputs"] = outs
    nb.write_text(json.dumps(data))
    runbook.tidy_outputs(nb)
    outs = json.loads(nb.read_text())["cells"][-1]["outputs"]
    assert [o["text"] for o in outs] == ["run 0 done\nrun 1 done\nrun 2 done\n", "study: 100%|###| 3/3\n"]
    assert progress_displays(nb) == ["study: 100%|###| 3/3"]


def test_one_bar_per_training_interactively(monkeypatch, tmp_path):
    """Outside a headless run a training shows one bar (over the steps of every epoch), not one per epoch."""
    from orsalib.config import load_profile
    from orsalib.engine import trainer
    from orsalib.experiments.fer import train_fer

    made = []

    class Counting(trainer.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs.get("desc"))
            super().__init__(*args, **kwargs)

    monkeypatch.delenv("ORSA_HEADLESS", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(trainer, "tqdm", Counting)
    cfg = load_profile("smoke", {"train.epochs": 3, "train.max_steps_per_epoch": 2}, run_name="bar")
    train_fer(cfg, run_dir=tmp_path / "run", existing="overwrite")
    assert made == ["train"]


@pytest.mark.slow
def test_executed_notebook_has_at_most_one_progress_display_per_training(tmp_path):
    out = tmp_path / "runs"
    nb = make_notebook(tmp_path / "10_train_twice.ipynb", [f"OUT = {str(out)!r}", TRAIN_TWICE])
    executed = tmp_path / "executed" / nb.name
    r = runbook.run_notebook(nb, executed, {"profile": "smoke", "run_name": "progress"}, timeout=600)
    assert r.status == "ok", r.error
    shown = progress_displays(executed)
    trainings = 2
    assert len([s for s in shown if s.lstrip().startswith(("train", "epoch"))]) <= trainings, shown
    text = "".join(
        "".join(o.get("text", "")) for c in json.loads(executed.read_text())["cells"] for o in c.get("outputs", [])
    )
    assert "\r" not in text
    assert len(re.findall(r"^epoch [12]/2 \|", text, flags=re.M)) == 2 * trainings, text  # a line per epoch
    assert executed.with_suffix(".html").is_file()  # the HTML rendering beside it


# ----------------------------------------------------------------------------- transient bars outside training
def test_transient_bars_are_one_line_when_headless(monkeypatch, capsys):
    from orsalib import utils

    monkeypatch.setenv("ORSA_HEADLESS", "1")
    assert utils.progress_quiet()
    bar = utils.progress_bar(range(5), desc="hashing images", unit="img")
    assert isinstance(bar, utils.QuietProgress) and sum(bar) == 10
    with utils.progress_bar(total=4, desc="priors oracle @64", unit="img") as b:
        b.update(3)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and not any(BAR.search(ln) for ln in lines)
    assert lines[0].startswith("hashing images: 5 img in ") and lines[1].startswith("priors oracle @64: 3/4 img in ")
    assert list(utils.progress_bar(range(3), desc="off", enabled=False)) == [0, 1, 2]  # progress=False: no line
    assert capsys.readouterr().out == ""


def test_transient_bars_only_on_a_terminal_or_a_notebook_display(monkeypatch):
    import io
    import sys

    from orsalib import utils

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("ORSA_HEADLESS", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert utils.progress_quiet()  # a log file or a pipe: no bar
    monkeypatch.setattr(sys, "stderr", Tty())
    assert not utils.progress_quiet()
    bar = utils.progress_bar(range(2), desc="predict", file=sys.stderr)
    assert not isinstance(bar, utils.QuietProgress) and list(bar) == [0, 1] and not bar.leave
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert utils.progress_quiet()


def test_predict_says_one_line_when_headless(monkeypatch, capsys):
    import torch

    from orsalib.engine.evaluate import predict

    monkeypatch.setenv("ORSA_HEADLESS", "1")
    batches = [{"image": torch.zeros(2, 3, 4, 4), "label": torch.zeros(2, dtype=torch.long)} for _ in range(3)]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
    p = predict(model, batches, device="cpu", progress=True, forward=lambda m, b: m(b["image"]))
    assert len(p) == 6
    out = capsys.readouterr()
    assert out.out.startswith("predict: 3 batch in ") and out.out.count("\n") == 1 and not BAR.search(out.err)
