import json

import numpy as np
import pytest

from aime.runtime.replay import ReplayBuffer, random_replay

OBS = (3, 4, 4)


def fill(buffer: ReplayBuffer, steps: int, episode_len: int = 5, start: int = 0) -> None:
    """Write ``steps`` rows; the frame value encodes (stream, global step) so windows can be checked."""
    S = buffer.num_streams
    for t in range(start, start + steps):
        obs = np.zeros((S, *OBS), np.uint8)
        obs[:, 0, 0, 0] = t % 256
        obs[:, 0, 0, 1] = t // 256
        obs[:, 1, 0, 0] = np.arange(S)
        buffer.add(
            obs,
            action=np.full(S, t),
            reward=np.full(S, float(t)),
            is_first=np.full(S, t % episode_len == 0),
            is_terminal=np.full(S, t % episode_len == episode_len - 1),
        )


def step_ids(obs: np.ndarray) -> np.ndarray:
    return obs[..., 0, 0, 0].astype(np.int64) + 256 * obs[..., 0, 0, 1].astype(np.int64)


def test_sample_shapes_and_dtypes():
    buffer = ReplayBuffer(capacity=200, num_streams=2, obs_shape=OBS)
    fill(buffer, 50)
    batch = buffer.sample(batch_size=6, seq_len=8)
    assert batch["obs"].shape == (6, 8, *OBS) and batch["obs"].dtype == np.uint8
    for name, dtype in [("action", np.int64), ("reward", np.float32), ("is_first", bool), ("is_terminal", bool)]:
        assert batch[name].shape == (6, 8) and batch[name].dtype == dtype


def test_windows_are_contiguous_and_from_one_stream():
    buffer = ReplayBuffer(capacity=300, num_streams=3, obs_shape=OBS, seed=1)
    fill(buffer, 80)
    batch = buffer.sample(batch_size=64, seq_len=10)
    ids = step_ids(batch["obs"])
    assert (np.diff(ids, axis=1) == 1).all()
    streams = batch["obs"][:, :, 1, 0, 0]
    assert (streams == streams[:, :1]).all()
    assert len(np.unique(streams[:, 0])) == 3  # all streams get sampled
    # columns stay aligned with the frames they belong to
    assert (batch["action"] == ids).all() and (batch["reward"] == ids).all()


def test_is_first_marks_every_episode_boundary_inside_windows():
    buffer = ReplayBuffer(capacity=100, num_streams=1, obs_shape=OBS, seed=2)
    fill(buffer, 100, episode_len=7)
    batch = buffer.sample(batch_size=128, seq_len=20)
    ids = step_ids(batch["obs"])
    assert (batch["is_first"] == (ids % 7 == 0)).all()
    # a terminal row is always followed by a first row
    term = batch["is_terminal"][:, :-1]
    assert batch["is_first"][:, 1:][term].all()


def test_ring_never_straddles_the_write_head():
    buffer = ReplayBuffer(capacity=40, num_streams=2, obs_shape=OBS, seed=3)  # 20 rows per stream
    fill(buffer, 57)  # wrapped: the stream holds steps 37..56, the head sits between 56 and 37
    assert buffer.filled == 20 and len(buffer) == 40
    for _ in range(20):
        ids = step_ids(buffer.sample(batch_size=32, seq_len=6)["obs"])
        assert (np.diff(ids, axis=1) == 1).all(), "a window crossed the write head"
        assert ids.min() >= 37 and ids.max() <= 56
    # the oldest and the newest rows are both reachable
    ids = step_ids(buffer.sample(batch_size=2000, seq_len=6)["obs"])
    assert ids.min() == 37 and ids.max() == 56


def test_full_length_window_after_wrap_is_the_whole_stream_in_order():
    buffer = ReplayBuffer(capacity=10, num_streams=1, obs_shape=OBS)
    fill(buffer, 23)
    ids = step_ids(buffer.sample(batch_size=3, seq_len=10)["obs"])
    assert (ids == np.arange(13, 23)).all()


def test_capacity_holds():
    buffer = ReplayBuffer(capacity=30, num_streams=3, obs_shape=OBS)
    fill(buffer, 100)
    assert len(buffer) == 30 and buffer.total_added == 100
    assert buffer.obs.shape[:2] == (3, 10)


def test_sampling_requires_enough_rows():
    buffer = ReplayBuffer(capacity=100, num_streams=1, obs_shape=OBS)
    fill(buffer, 5)
    assert not buffer.can_sample(6)
    with pytest.raises(ValueError, match="length 6"):
        buffer.sample(2, 6)


def test_bad_inputs_raise_clear_errors():
    buffer = ReplayBuffer(capacity=10, num_streams=2, obs_shape=OBS)
    with pytest.raises(ValueError, match="obs: expected uint8"):
        buffer.add(np.zeros((2, *OBS), np.float32), np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="reward: expected shape"):
        buffer.add(np.zeros((2, *OBS), np.uint8), np.zeros(2), np.zeros(3), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(capacity=1, num_streams=2)


def test_save_load_round_trip_is_exact(tmp_path):
    buffer = ReplayBuffer(capacity=60, num_streams=2, obs_shape=OBS, seed=4)
    fill(buffer, 45)  # wrapped
    buffer.sample(4, 5)  # advance the generator
    buffer.save(tmp_path / "replay")
    loaded = ReplayBuffer.load(tmp_path / "replay")
    assert loaded.state() == buffer.state()
    for name in ("obs", "action", "reward", "is_first", "is_terminal"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(buffer, name))
    # the same future: same samples, and the same rows after further writes
    a, b = buffer.sample(8, 5), loaded.sample(8, 5)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    fill(buffer, 7, start=45)
    fill(loaded, 7, start=45)
    np.testing.assert_array_equal(buffer.obs, loaded.obs)
    # saving over an existing folder replaces it
    loaded.save(tmp_path / "replay")
    assert ReplayBuffer.load(tmp_path / "replay").total_added == 52


def test_partially_filled_save_stores_only_written_rows(tmp_path):
    buffer = ReplayBuffer(capacity=1000, num_streams=1, obs_shape=OBS)
    fill(buffer, 10)
    buffer.save(tmp_path / "r")
    assert np.load(tmp_path / "r" / "obs.npy").shape == (1, 10, *OBS)
    loaded = ReplayBuffer.load(tmp_path / "r")
    np.testing.assert_array_equal(loaded.sample(3, 10)["obs"], buffer.sample(3, 10)["obs"])


def test_corrupted_folder_gives_a_clear_error(tmp_path):
    buffer = ReplayBuffer(capacity=20, num_streams=1, obs_shape=OBS)
    fill(buffer, 10)
    buffer.save(tmp_path / "r")
    np.save(tmp_path / "r" / "reward.npy", np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="reward.npy: expected"):
        ReplayBuffer.load(tmp_path / "r")
    with pytest.raises(ValueError, match="not a saved replay buffer"):
        ReplayBuffer.load(tmp_path / "missing")


def test_bytes_per_frame_at_atari_size():
    buffer = ReplayBuffer(capacity=100_000, num_streams=8)  # lazily allocated: no resident memory
    assert buffer.bytes_per_frame() == 3 * 84 * 84 + 8 + 4 + 1 + 1
    assert buffer.nbytes() <= 2.2e9


@pytest.fixture
def saved(tmp_path):
    buffer = ReplayBuffer(capacity=20, num_streams=2, obs_shape=OBS)
    fill(buffer, 6)
    buffer.save(tmp_path / "r")
    return tmp_path / "r"


def test_an_empty_or_cut_short_array_file_is_one_line(saved):
    obs = (saved / "obs.npy").read_bytes()
    (saved / "obs.npy").write_bytes(b"")  # np.load raises EOFError here
    with pytest.raises(ValueError, match=r"obs.npy is empty$"):
        ReplayBuffer.load(saved)
    (saved / "obs.npy").write_bytes(obs)
    data = (saved / "action.npy").read_bytes()
    (saved / "action.npy").write_bytes(data[:40])  # inside the header
    with pytest.raises(ValueError, match="action.npy is damaged: EOF: reading array header"):
        ReplayBuffer.load(saved)


def test_an_object_array_is_refused_without_advice_to_unpickle_it(saved):
    np.save(saved / "obs.npy", np.array([object()] * 3), allow_pickle=True)
    with pytest.raises(ValueError) as info:
        ReplayBuffer.load(saved)
    assert "obs.npy is damaged: it holds Python objects" in str(info.value)
    assert "allow_pickle" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"filled": 5}, "inconsistent counters"),  # 6 rows were written
        ({"head": 2}, "inconsistent counters"),
        ({"capacity": "20"}, "'capacity' must be a int"),
        ({"rng": None}, "'rng' must be a dict"),
        ({"rng": {"bit_generator": "nonsense"}}, "unusable sampling generator state"),
    ],
)
def test_a_damaged_state_file_is_one_line(saved, change, message):
    path = saved / "state.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ValueError, match=message):
        ReplayBuffer.load(saved)


def test_state_json_that_is_not_json_or_not_an_object(saved):
    (saved / "state.json").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="state.json is damaged"):
        ReplayBuffer.load(saved)
    (saved / "state.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        ReplayBuffer.load(saved)


def test_random_replay_is_one_episode_per_stream_drawn_from_its_seed():
    buffer = random_replay(6, streams=3, num_actions=4, obs_shape=OBS, seed=5)
    assert len(buffer) == 18 and buffer.num_streams == 3  # rows * streams: nothing overwritten
    batch = buffer.sample(3, 6)  # every window is a whole stream
    assert batch["obs"].shape == (3, 6, *OBS) and batch["obs"].dtype == np.uint8
    assert batch["is_first"][:, 0].all() and not batch["is_first"][:, 1:].any() and not batch["is_terminal"].any()
    assert ((0 <= batch["action"]) & (batch["action"] < 4)).all() and batch["obs"].std() > 50
    again = random_replay(6, streams=3, num_actions=4, obs_shape=OBS, seed=5).sample(3, 6)
    other = random_replay(6, streams=3, num_actions=4, obs_shape=OBS, seed=6).sample(3, 6)
    assert all(np.array_equal(batch[k], again[k]) for k in batch)
    assert not np.array_equal(np.sort(batch["reward"], axis=None), np.sort(other["reward"], axis=None))


def test_newest_rows_come_in_time_order_across_the_ring():
    buffer = ReplayBuffer(capacity=20, num_streams=2, obs_shape=OBS)  # 10 rows per stream
    fill(buffer, 13)  # the ring has wrapped: rows 3..12 are held
    rows = buffer.newest(4)
    assert rows["obs"].shape == (2, 4, *OBS) and set(rows) == {"obs", "action", "reward", "is_first", "is_terminal"}
    assert step_ids(rows["obs"]).tolist() == [[9, 10, 11, 12]] * 2 and rows["action"][0].tolist() == [9, 10, 11, 12]
    assert (rows["obs"][:, :, 1, 0, 0] == np.arange(2)[:, None]).all()  # each stream its own rows
    assert step_ids(buffer.newest(10)["obs"])[0].tolist() == list(range(3, 13))
    for bad in (0, 11):
        with pytest.raises(ValueError, match=r"rows must be in \[1, 10\]"):
            buffer.newest(bad)
