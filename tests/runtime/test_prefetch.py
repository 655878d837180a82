import threading

import numpy as np
import pytest

from aime.config import load_config
from aime.runtime.prefetch import BurstPrefetcher, prefetch_enabled
from aime.runtime.replay import ReplayBuffer


def filled_replay(seed=0):
    replay = ReplayBuffer(400, num_streams=2, obs_shape=(3, 8, 8), seed=seed)
    rng = np.random.default_rng(1)
    for _ in range(150):
        replay.add(
            rng.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8),
            rng.integers(0, 4, 2),
            rng.standard_normal(2).astype(np.float32),
            np.zeros(2, bool),
            np.zeros(2, bool),
        )
    return replay


@pytest.mark.parametrize("enabled", [True, False])
def test_a_burst_gives_the_batches_of_a_plain_loop_and_draws_no_further(enabled):
    plain, prefetched = filled_replay(), filled_replay()
    expected = [plain.sample(4, 5) for _ in range(5)]
    prefetcher = BurstPrefetcher(lambda: prefetched.sample(4, 5), enabled=enabled)
    try:
        got = list(prefetcher.burst(3)) + list(prefetcher.burst(0)) + list(prefetcher.burst(1))
        got += list(prefetcher.burst(1))
    finally:
        prefetcher.close()
    assert len(got) == 5
    for a, b in zip(expected, got):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert prefetched.rng.bit_generator.state == plain.rng.bit_generator.state


def test_the_next_batch_is_drawn_while_the_caller_holds_the_current_one():
    second_draw = threading.Event()
    calls = []

    def prepare():
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            second_draw.set()
        return len(calls)

    prefetcher = BurstPrefetcher(prepare)
    try:
        burst = prefetcher.burst(3)
        assert next(burst) == 1
        # the caller is still "updating" on batch 1: the worker draws batch 2 meanwhile
        assert second_draw.wait(timeout=30)
        assert list(burst) == [2, 3]
    finally:
        prefetcher.close()
    assert len(calls) == 3 and all(name.startswith("replay-prefetch") for name in calls)


def test_without_prefetch_every_draw_runs_in_the_callers_thread_when_asked():
    names = []
    prefetcher = BurstPrefetcher(lambda: names.append(threading.current_thread().name), enabled=False)
    list(prefetcher.burst(3))
    assert names == [threading.current_thread().name] * 3


def test_settle_waits_for_the_draw_of_a_burst_left_early():
    plain, prefetched = filled_replay(), filled_replay()
    for _ in range(2):
        plain.sample(4, 5)
    prefetcher = BurstPrefetcher(lambda: prefetched.sample(4, 5))
    burst = prefetcher.burst(4)
    next(burst)
    burst.close()  # the caller stops after one batch (as the loop does on non-finite losses)
    prefetcher.settle()
    assert prefetched.rng.bit_generator.state == plain.rng.bit_generator.state  # one draw further on, no more
    prefetcher.close()


def test_training_with_and_without_prefetch_is_bit_identical(tmp_path):
    import torch

    from aime.runtime.loop import Trainer

    params = {}
    for prefetch in ("thread", "none"):
        cfg = load_config(
            ["debug"],
            ["train.steps=160", "eval.episodes=0", "log.images_every=0", f"replay.prefetch={prefetch}"],
        )
        trainer = Trainer(cfg, tmp_path / f"run_{prefetch}", progress=False)
        try:
            trainer.run()
        finally:
            trainer.logger.close()
            trainer.env.close()
        assert trainer.updates > 20  # bursts of two updates per vector step (4 envs, ratio 40, 8 x 10)
        assert trainer.prefetcher.enabled == (prefetch == "thread")
        params[prefetch] = [p.detach().clone() for p in trainer.agent.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(params["thread"], params["none"]))


def test_auto_prefetches_on_cuda_only_and_a_bad_mode_is_refused():
    assert prefetch_enabled("auto", "cuda:0") and not prefetch_enabled("auto", "cpu")
    assert prefetch_enabled("thread", "cpu") and not prefetch_enabled("none", "cuda")
    with pytest.raises(ValueError, match="replay.prefetch must be one of auto, thread, none, got 'yes'"):
        prefetch_enabled("yes", "cpu")
