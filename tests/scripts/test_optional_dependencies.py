"""Every script that needs an optional package (matplotlib: the ``plots`` extra; OCAtari: the
``objects`` extra) checks for it when it starts: one line naming the extra, exit code 2, nothing
computed or written -- not a traceback after minutes of work (docs/running.md)."""

import runpy
import sys
from pathlib import Path

import pytest

from aime.runtime import extras

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def main_of(name):
    return runpy.run_path(str(SCRIPTS / f"{name}.py"), run_name=f"{name}_under_test")["main"]


# script -> (arguments that would start real work, the module to hide, the extra the line must name)
CASES = {
    "fit_image_field": (["--quick", "--out", "{out}"], "matplotlib", "plots"),
    "train_nca": (["--quick", "--out", "{out}"], "matplotlib", "plots"),
    "evolve_latents": (["--out", "{out}"], "matplotlib", "plots"),
    "neural_field_timeseries": (["--out", "{out}"], "matplotlib", "plots"),
    "train_world_model": (["--env", "Catch", "--out", "{out}"], "matplotlib", "plots"),
    "plot_runs": (["{out}", "--out", "{out}/curves.png"], "matplotlib", "plots"),
    "eval_objects": (["{out}"], "ocatari", "objects"),
    "map_gradients": (["{out}"], "ocatari", "objects"),
    "model_report": (["{out}", "--tracking", "10"], "ocatari", "objects"),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_a_missing_optional_package_stops_the_script_at_start(script, tmp_path, monkeypatch, capsys):
    args, module, extra = CASES[script]
    out = tmp_path / "out"
    monkeypatch.setitem(sys.modules, module, None)  # what an install without the extra looks like
    with pytest.raises(SystemExit) as exc:
        main_of(script)([a.format(out=out) for a in args])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    assert err[0].startswith(f"{script}.py: error: {module} is not installed") and f"'{extra}' extra" in err[0]
    assert extras.EXTRAS[module][1] in err[0]  # the install command
    assert not out.exists() and captured.out == ""  # nothing was computed or written


def test_world_model_training_on_an_object_game_needs_ocatari_only_for_the_object_evaluation(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ocatari", None)
    extras.require_objects("train_world_model.py", "Catch")  # no object boxes for Catch: nothing needed
    extras.require_objects("train_world_model.py", "Breakout", wanted=False)  # --object-steps 0
    extras.require_objects("train_world_model.py", "NoSuchGame")  # the script's own check reports it
    with pytest.raises(SystemExit) as exc:
        extras.require_objects("train_world_model.py", "Breakout")
    assert exc.value.code == 2
    assert "ocatari is not installed, needed for the object boxes of Breakout" in capsys.readouterr().err


def test_a_package_that_fails_on_import_counts_as_missing(tmp_path, monkeypatch):
    blocker = tmp_path / "matplotlib"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'matplotlib.backends'\")\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)
    assert extras.missing(["matplotlib"]) == ["matplotlib"]
