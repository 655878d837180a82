import numpy as np

from aime.config import load_config


def test_a_sampled_evaluation_leaves_the_training_random_stream_alone(tmp_path):
    import torch

    from aime.runtime.loop import Trainer

    cfg = load_config(["debug"], ["eval.greedy=false", "eval.episodes=2", "env.num_envs=2"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        torch.manual_seed(123)
        expected = torch.rand(4)
        torch.manual_seed(123)
        trainer._evaluate()  # samples actions and latents from torch's generator
        assert torch.equal(torch.rand(4), expected)
        assert trainer.last_eval == trainer.last_eval  # it did evaluate (not NaN)
    finally:
        trainer.logger.close()
        trainer.env.close()


class FakeClock:
    """Seconds that the test sets (rates and ETAs are computed from it, never from the real time)."""

    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


def metrics(logdir):
    import json

    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]


def test_throughput_charts_cover_their_own_interval_not_the_time_since_start(tmp_path):
    from aime.runtime.loop import Trainer
    from aime.runtime.metrics import Throughput

    trainer = Trainer(load_config(["debug"]), tmp_path / "run", progress=False)
    try:
        trainer.clock = clock = FakeClock(100.0)
        throughput = Throughput(0, 0, clock())
        clock.now, trainer.env_steps = 110.0, 1000  # a fast warm-up: 1,000 steps in 10 s, no updates
        trainer._log_scalars([], throughput)
        clock.now, trainer.env_steps, trainer.updates = 120.0, 1100, 50  # training: 100 steps, 50 updates in 10 s
        trainer._log_scalars([{"losses/kl": 1.0}] * 50, throughput)
    finally:
        trainer.logger.close()
        trainer.env.close()
    warmup, training = [r for r in metrics(tmp_path / "run") if "charts/SPS" in r]
    assert warmup["charts/SPS"] == 100.0 and warmup["charts/updates_per_second"] == 0.0
    # the run's averages since the start would be 55 steps/s and 2.5 updates/s
    assert training["charts/SPS"] == 10.0 and training["charts/updates_per_second"] == 5.0


def test_every_exit_prints_the_end_summary_with_the_resume_command(tmp_path, capsys):
    import signal

    import pytest
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from aime.runtime.loop import Trainer
    from aime.runtime.stopping import TrainingStopped

    stopped = Trainer(load_config(["debug"]), tmp_path / "stopped", progress=False)
    stopped._signal = signal.SIGTERM
    with pytest.raises(TrainingStopped):
        stopped.run()
    out = capsys.readouterr().out
    assert "stopped (SIGTERM): 0 agent steps, 0 updates, 0 episodes" in out and "no evaluation yet" in out
    assert f"checkpoint: {tmp_path / 'stopped' / 'checkpoint'} (agent step 0)" in out
    assert f"continue: python scripts/train_agent.py --resume {tmp_path / 'stopped'}\n" in out

    done = Trainer(load_config(["debug"], ["train.steps=8", "eval.episodes=1"]), tmp_path / "done", progress=False)
    done.run()
    out = capsys.readouterr().out
    assert "done: 8 agent steps, 0 updates" in out and "eval return" in out and "(at step 8)" in out
    assert f"continue: python scripts/train_agent.py --resume {tmp_path / 'done'} --steps 16" in out
    # the hyper-parameters name the device in use, not "auto"
    acc = EventAccumulator(str(tmp_path / "done"), size_guidance={"tensors": 0})
    acc.Reload()
    table = acc.Tensors("hyperparameters/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "|device|cpu|" in table and "auto" not in table


def test_evaluation_episodes_are_cut_at_the_step_cap_and_reported(tmp_path, capsys):
    from aime.runtime.loop import Trainer

    cfg = load_config(["debug"], ["eval.max_steps=5", "eval.episodes=3"])  # a Catch episode lasts 9 steps
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    try:
        trainer._evaluate()
    finally:
        trainer.logger.close()
        trainer.env.close()
    row = next(r for r in metrics(tmp_path / "run") if "eval/episodic_return" in r)
    assert row["eval/capped_episodes"] == 3 and row["eval/episodic_length"] == 5
    assert "3 of 3 episodes hit the cap of eval.max_steps=5" in capsys.readouterr().out


def test_nonfinite_updates_are_counted_logged_and_stop_the_run_with_a_checkpoint(tmp_path):
    import pytest

    from aime.agent.agent import NONFINITE
    from aime.runtime.loop import Trainer
    from aime.runtime.stopping import TrainingStopped

    cfg = load_config(["debug"], ["train.max_nonfinite_updates=3", "env.num_envs=2"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    for _ in range(cfg.train.seq_len + 1):  # enough rows to sample a window
        trainer.replay.add(
            np.zeros((2, 3, 84, 84), np.uint8),
            np.zeros(2, np.int64),
            np.zeros(2, np.float32),
            np.zeros(2, bool),
            np.zeros(2, bool),
        )
    trainer.env_steps = trainer.replay.total_added * 2  # consistent with the replay, as a checkpoint requires
    outcomes = iter([False, False, True, False, False, False])
    trainer.agent.train_step = lambda batch, learn_actor: (
        (dict(NONFINITE), False) if not next(outcomes) else ({"x": 1.0}, True)
    )
    batch = trainer._next_batch()
    try:
        assert trainer._train_once(batch) == {} and trainer._train_once(batch) == {}
        assert trainer._train_once(batch) == {"x": 1.0} and trainer.nonfinite_streak == 0 and trainer.updates == 1
        trainer._train_once(batch)
        trainer._train_once(batch)
        with pytest.raises(TrainingStopped, match="3 updates in a row had a non-finite loss") as stop:
            trainer._train_once(batch)
        assert stop.value.reason == "non-finite losses" and trainer.nonfinite_total == 5
        assert (tmp_path / "run" / "checkpoint" / "agent.pt").is_file()
    finally:
        trainer.logger.close()
        trainer.env.close()
    logged = [r["charts/nonfinite_updates"] for r in metrics(tmp_path / "run") if "charts/nonfinite_updates" in r]
    assert logged == [1, 2, 3, 4, 5]


def test_the_final_evaluation_is_skipped_when_the_periodic_one_evaluated_the_last_step(tmp_path):
    from aime.runtime.loop import Trainer

    # eval.every: at the last step (once, not twice), before it (then the final one), never (the final one)
    for every, expected in [(8, [8]), (6, [6, 8]), (0, [8])]:
        cfg = load_config(
            ["debug"],
            ["train.steps=8", "env.num_envs=2", "eval.episodes=1", f"eval.every={every}", "eval.max_steps=20"],
        )
        logdir = tmp_path / f"every{every}"
        Trainer(cfg, logdir, progress=False).run()
        steps = [r["step"] for r in metrics(logdir) if "eval/episodic_return" in r]
        assert steps == expected, (every, steps)


def test_the_actor_learns_from_train_actor_start_on(tmp_path):
    from aime.runtime.loop import Trainer

    cfg = load_config(
        ["debug"],
        ["train.steps=48", "train.warmup_steps=8", "train.actor_start=24", "env.num_envs=2", "eval.every=0"],
    )
    cfg.eval.episodes, cfg.eval.max_steps = 1, 20
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    calls, train_step = [], trainer.agent.train_step
    trainer.agent.train_step = lambda batch, learn_actor: (
        calls.append((trainer.env_steps, learn_actor)) or train_step(batch, learn_actor=learn_actor)
    )
    trainer.run()
    assert calls and {learn for step, learn in calls} == {False, True}
    assert all(learn == (step >= 24) for step, learn in calls), calls


def test_the_start_up_summary_says_when_the_first_update_compiles(tmp_path):
    from aime.runtime.loop import Trainer

    summaries = []
    for name, sets in (("eager", []), ("compiled", ["train.compile_world_model=true"])):
        trainer = Trainer(load_config(["debug"], sets), tmp_path / name, progress=False)
        try:
            summaries.append(trainer.summary())
        finally:
            trainer.logger.close()
            trainer.env.close()
    eager, compiled = summaries
    assert "torch.compile" not in eager
    assert "torch.compile: world_model.loss; the first update compiles (minutes)" in compiled
