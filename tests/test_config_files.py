"""Reading configuration files: anything but a plain YAML mapping is one ConfigError line."""

import pytest

from aime.config import ConfigError, load_config, load_config_file, save_config


@pytest.mark.parametrize(
    "content, message",
    [
        (b"seed: 0\nmodel: {deter: 64\n  stoch: [\n", r"is not valid YAML: .* at line 3, column \d+$"),
        (b"seed: !!python/object/apply:os.system ['touch PWNED']\n", "only plain YAML values are allowed"),
        (b"seed: 0\x01\n", "unacceptable character"),
        (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
        (b"- 1\n- 2\n", "must hold a mapping of config keys, got list"),
        (b"train:\n  model_lr:\n", "config key 'train.model_lr': expected float, got None"),
    ],
)
def test_a_config_file_that_is_not_a_plain_mapping_is_one_line(tmp_path, content, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_config_file(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert not (tmp_path / "PWNED").exists()


def test_a_saved_config_reads_back(tmp_path):
    cfg = load_config(["debug"], ["model.deter=40"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config_file(tmp_path / "config.yaml") == cfg


def test_a_replay_smaller_than_one_window_per_stream_is_refused_with_the_minimum():
    with pytest.raises(ConfigError, match=r"each of the 4 environment streams 5 rows.*the minimum is 40"):
        load_config(["debug"], ["replay.capacity=20"])
    load_config(["debug"], ["replay.capacity=40"])  # one window per stream: trains
