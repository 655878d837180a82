"""aime.runtime.plots (grouping, mean +- sd) and scripts/plot_runs.py on tiny synthetic runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from aime.runtime.plots import (
    archive_run,
    eval_table,
    group_runs,
    load_run,
    mean_sd,
    panel_curves,
    plot_groups,
    tails,
    trailing_mean,
)

ROOT = Path(__file__).resolve().parents[2]
PLOT = [sys.executable, str(ROOT / "scripts" / "plot_runs.py")]
ARCHIVE = [sys.executable, str(ROOT / "scripts" / "archive_run.py")]


def make_run(path, seed, lr, evals, train=(), start=1000.0):
    """A run directory: config.yaml and metrics.jsonl with eval returns ``{step: value}`` one
    minute apart and train episodes ``[(step, return)]``."""
    path.mkdir(parents=True)
    config = {"seed": seed, "env": {"name": "Catch"}, "train": {"model_lr": lr}, "log": {"logdir": str(path)}}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [{"step": step, "time": start + step * 0.6, "charts/episodic_return": value} for step, value in train]
    rows += [{"step": step, "time": start + step * 0.6, "eval/episodic_return": value} for step, value in evals.items()]
    rows.append({"step": 10, "time": start, "losses/kl": 1.0, "eval/episodic_return": None})  # other tags, nulls
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sorted(rows, key=lambda r: r["time"])))
    return path


@pytest.fixture
def runs(tmp_path):
    return [
        make_run(tmp_path / "a", 0, 1e-3, {100: 0.0, 200: 2.0}, train=[(10, 1.0), (20, 3.0)]),
        make_run(tmp_path / "b", 1, 1e-3, {100: 2.0, 200: 4.0, 300: 9.0}, train=[(10, -1.0), (20, 1.0)]),
        make_run(tmp_path / "c", 0, 3e-4, {100: 5.0, 200: 5.0}),
    ]


def test_runs_that_differ_only_in_replay_prefetch_form_one_group(tmp_path):
    older = make_run(tmp_path / "older", 0, 1e-3, {100: 0.0})  # from before the key existed
    newer = make_run(tmp_path / "newer", 1, 1e-3, {100: 1.0})
    config = yaml.safe_load((newer / "config.yaml").read_text())
    (newer / "config.yaml").write_text(yaml.safe_dump({**config, "replay": {"prefetch": "thread"}}))
    other = make_run(tmp_path / "other", 0, 3e-4, {100: 5.0})
    groups = group_runs([load_run(p) for p in (older, newer, other)])
    assert sorted(groups) == ["train.model_lr=0.0003 (1 run)", "train.model_lr=0.001 (2 runs)"]


def test_runs_are_grouped_by_config_except_seed_and_logdir_and_averaged(runs):
    loaded = [load_run(path, smooth=2) for path in runs]
    groups = group_runs(loaded)
    assert sorted(groups) == ["train.model_lr=0.0003 (1 run)", "train.model_lr=0.001 (2 runs)"]
    pair = groups["train.model_lr=0.001 (2 runs)"]
    assert [r.path.name for r in pair] == ["a", "b"]
    x, mean, sd = mean_sd([(r.eval.steps, r.eval.values) for r in pair], points=3)
    # only the range both runs cover (b's step 300 is left out): means 1, 2, 3 and sd 1
    assert x.tolist() == [100, 150, 200] and mean.tolist() == [1.0, 2.0, 3.0] and sd.tolist() == [1.0, 1.0, 1.0]
    assert np.allclose(pair[0].eval.hours, [1 / 60, 2 / 60])  # wall time since the run's first record
    assert pair[0].train.values.tolist() == [1.0, 2.0]  # smoothed over the last 2 episodes
    assert trailing_mean(np.array([1.0, 3.0, 5.0, 7.0]), 3).tolist() == [1.0, 2.0, 3.0, 5.0]
    # b goes on past the mean's end (200): its tail starts at 200, where it joins the mean
    ((tail_x, tail_y),) = tails([(r.eval.steps, r.eval.values) for r in pair], x[-1])
    assert tail_x.tolist() == [200, 300] and tail_y.tolist() == [pair[1].eval.values[-2], pair[1].eval.values[-1]]
    assert tails([(np.array([1.0, 2.5]), np.array([0.0, 1.0]))], 2.0)[0][0].tolist() == [1.0, 2.5]  # from before
    assert tails([(r.eval.steps, r.eval.values) for r in pair], 300) == []


def test_the_figure_is_written(runs, tmp_path):
    out = plot_groups(group_runs([load_run(p) for p in runs]), tmp_path / "fig" / "curves.png", random=(-0.6, 100))
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (800, 1200, 3)


def test_cli_plots_runs_with_a_random_line_and_reports_bad_input(runs, tmp_path):
    random = tmp_path / "random.json"
    random.write_text(json.dumps({"env": "Catch", "episodes": 400, "return_mean": -0.6, "returns": [-0.6] * 400}))
    out = tmp_path / "curves.png"
    result = subprocess.run(
        PLOT + [str(p) for p in runs] + ["--random", str(random), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert out.is_file() and "train.model_lr=0.001 (2 runs)" in result.stdout
    assert "| 200 |" not in result.stdout  # the table only when asked
    result = subprocess.run(
        PLOT + [str(p) for p in runs] + ["--out", str(out), "--table"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "| 200 | 3.00 ± 1.00 | 5.00 |" in result.stdout
    named = PLOT + [str(p) for p in runs] + ["--out", str(out), "--table", "--label", "fast", "--label", "slow"]
    result = subprocess.run(named, capture_output=True, text=True)
    assert result.returncode == 0 and "| agent steps | fast (2 runs) | slow (1 run) |" in result.stdout
    result = subprocess.run(named[:-2], capture_output=True, text=True)
    assert result.returncode == 2 and "1 --label for 2 groups of runs" in result.stderr
    result = subprocess.run(PLOT + [str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no config.yaml: not an AIME run directory" in result.stderr


def test_cli_without_matplotlib_names_the_extra(runs, tmp_path):
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'matplotlib'\")\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    result = subprocess.run(PLOT + [str(runs[0])], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2 and 'pip install -e ".[plots]"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_other_tags_get_panels_of_their_own(runs, tmp_path):
    rows = [json.loads(line) for line in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    rows += [
        {"step": step, "time": 2000.0 + step, "objects/attention_lift_ball": lift}
        for step, lift in ((100, 4.0), (200, 8.0))
    ]
    (runs[0] / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = [load_run(p, tags=["objects/attention_lift_ball"]) for p in runs]
    assert loaded[0].tags["objects/attention_lift_ball"].values.tolist() == [4.0, 8.0]
    assert loaded[1].tags["objects/attention_lift_ball"].values.size == 0  # never logged: an empty curve
    out = plot_groups(group_runs(loaded), tmp_path / "tags.png", tags=["objects/attention_lift_ball"])
    assert cv2.imread(str(out)).shape == (1200, 1200, 3)  # a third row


def test_the_eval_table_gives_each_groups_mean_and_sd_at_each_evaluated_step(runs):
    groups = group_runs([load_run(p) for p in runs])
    table = eval_table(groups, random=(-0.6, 100)).splitlines()
    assert table[0] == "| agent steps | train.model_lr=0.001 (2 runs) | train.model_lr=0.0003 (1 run) |"
    assert table[2:] == [
        "| 100 | 1.00 ± 1.00 | 5.00 |",  # a group of one run has no spread over runs
        "| 200 | 3.00 ± 1.00 | 5.00 |",
        "| 300 | 9.00 (1 of 2) |  |",  # one run evaluated there, the other group none
        "| random policy (100 episodes) | -0.60 | -0.60 |",
    ]


def test_an_archive_keeps_the_curves_and_the_hours_of_a_resumed_run(tmp_path):
    run = make_run(tmp_path / "run", 0, 1e-3, {100: 1.0}, train=[(10, 1.0), (20, 3.0)])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # a second session: a checkpoint row at step 150 (losses only), a pause of an hour, the resume
    rows += [
        {"step": 120, "time": 1090.0, "losses/kl": 0.7, "attention/entropy_ratio": 0.4, "behavior/actor_entropy": 1.2},
        {"step": 150, "time": 1100.0, "losses/kl": 0.5},
        {"step": 150, "time": 4700.0, "event": "resume", "changed": ["train.compile_world_model=True"]},
        {"step": 200, "time": 4760.0, "eval/episodic_return": 2.0, "objects/attention_lift_ball": 9.0},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = archive_run(run, tmp_path / "archive")
    kept = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert not any("losses/kl" in r for r in kept)  # cut to returns, evaluations, attention, objects, behaviour
    assert {"step": 150, "time": 1100.0} in kept  # the row before the resume: the pause starts there
    assert {"step": 150, "time": 4700.0, "event": "resume", "changed": ["train.compile_world_model=True"]} in kept
    assert {"step": 120, "time": 1090.0, "attention/entropy_ratio": 0.4, "behavior/actor_entropy": 1.2} in kept
    tags = ["objects/attention_lift_ball"]
    original, archived = load_run(run, tags=tags), load_run(out, tags=tags)
    for which in ("train", "eval"):
        for axis in ("steps", "hours", "values"):
            assert np.array_equal(getattr(getattr(original, which), axis), getattr(getattr(archived, which), axis))
    assert archived.eval.hours[-1] == pytest.approx((100 + 60) / 3600)  # the hour's pause left out
    assert archived.tags[tags[0]].values.tolist() == [9.0]
    assert archived.config == original.config
    with pytest.raises(ValueError, match="would overwrite the run"):
        archive_run(run, run)
    with pytest.raises(ValueError, match="not an AIME run directory"):
        archive_run(tmp_path / "archive" / "missing", tmp_path / "elsewhere")


def test_runs_without_hours_or_a_tag_are_left_out_of_those_panels_only(runs, tmp_path):
    # an archive transcribed from a table: eval returns at steps, no wall-clock
    table = tmp_path / "table"
    table.mkdir()
    (table / "config.yaml").write_text((runs[0] / "config.yaml").read_text())
    (table / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "eval/episodic_return": v}) + "\n" for s, v in ((100, 4.0), (200, 6.0)))
    )
    loaded = [load_run(p) for p in (runs[0], table)]
    assert np.isnan(loaded[1].eval.hours).all()
    assert len(panel_curves(loaded, "eval", "steps")) == 2
    (hours,) = panel_curves(loaded, "eval", "hours")
    assert np.array_equal(hours[0], loaded[0].eval.hours)
    (train,) = panel_curves(loaded, "train", "steps")  # the table has no train returns
    assert panel_curves(loaded, "objects/attention_lift_ball", "steps") == []
    out = plot_groups(group_runs(loaded), tmp_path / "one.png", panels=[("eval", "steps")])
    assert cv2.imread(str(out)).shape == (400, 600, 3)  # one panel
    with pytest.raises(ValueError, match="choose train or eval"):
        plot_groups(group_runs(loaded), tmp_path / "bad.png", panels=[("eval", "minutes")])


def test_cli_archives_a_run_and_plots_one_panel_from_archives(runs, tmp_path):
    result = subprocess.run(ARCHIVE + [str(runs[1]), str(tmp_path / "kept" / "b")], capture_output=True, text=True)
    assert result.returncode == 0 and "wrote" in result.stdout, result.stderr
    out = tmp_path / "eval.png"
    result = subprocess.run(
        PLOT + [str(runs[0]), str(tmp_path / "kept" / "b"), "--panel", "eval:steps", "--out", str(out), "--table"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "| 300 | 9.00 (1 of 2) |" in result.stdout, result.stderr
    assert cv2.imread(str(out)).shape == (400, 600, 3)
    result = subprocess.run(PLOT + [str(runs[0]), "--panel", "eval:days"], capture_output=True, text=True)
    assert result.returncode == 2 and "choose train or eval" in result.stderr
    result = subprocess.run(ARCHIVE + [str(tmp_path), str(tmp_path / "x")], capture_output=True, text=True)
    assert result.returncode == 2 and "not an AIME run directory" in result.stderr
