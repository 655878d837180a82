import io

from aime.runtime.progress import Progress, format_duration


class FakeClock:
    """Seconds that the test sets (rates and ETAs are computed from it, never from the real time)."""

    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


def test_progress_bar_eta_from_the_training_rate_and_the_exact_step():
    clock, out, lines = FakeClock(), io.StringIO(), []
    progress = Progress(total=1000, initial=0, warmup=100, file=out, clock=clock, announce=lines.append)
    clock.now = 1.0
    progress.advance(100, 0, float("nan"), [])  # warm-up: 100 steps in 1 s; training starts here
    assert "no episode finished yet" in out.getvalue() and "nan" not in out.getvalue()
    clock.now = 11.0
    progress.advance(200, 50, 1.0, [1.0, -1.0])  # training: 10 steps/s
    assert progress.estimate.remaining() == 80.0  # 800 steps at 10 steps/s (not at ~18 steps/s overall)
    assert "ETA 1 min 20 s" in out.getvalue() and "return last 1.0, mean(2) 0.0" in out.getvalue()
    assert len(lines) == 1 and "expected duration: 1 min 31 s" in lines[0]  # 11 s so far + 80 s
    clock.now = 11.01  # within the redraw interval: not drawn, unless a slow phase follows
    progress.advance(204, 50, 1.0, [1.0])
    assert "200/1000" in out.getvalue().split("\r")[-1]
    progress.show()  # before a slow phase (training, evaluation): the step the run is at
    drawn = out.getvalue().split("\r")[-1]  # tqdm's elapsed field is real time: not asserted
    assert "| 204/1000 [" in drawn and drawn.endswith(
        ", 50 updates, return last 1.0, mean(1) 1.0, 10.39 steps/s, ETA 1 min 17 s]"
    )
    clock.now = 100.0
    progress.advance(300, 60, 1.0, [1.0])
    assert len(lines) == 1  # announced once


def test_durations_read_in_the_largest_units():
    assert format_duration(42.4) == "42 s"
    assert format_duration(200) == "3 min 20 s"
    assert format_duration(14 * 3600 + 5 * 60 + 20) == "14 h 05 min"


def test_a_compiling_first_update_is_left_out_of_the_rate_when_asked():
    clock, out, lines = FakeClock(), io.StringIO(), []
    progress = Progress(
        total=1000, initial=0, warmup=100, file=out, clock=clock, announce=lines.append, wait_for_update=True
    )
    clock.now = 1.0
    progress.advance(100, 0, float("nan"), [])  # warm-up ends; the first update follows and compiles
    assert progress.estimate.rate() is None
    assert "ETA after the first update (compiling)" in out.getvalue()
    clock.now = 601.0
    progress.advance(110, 1, 0.0, [0.0])  # 10 minutes later: compiled, one update done; the rate starts here
    assert progress.estimate.rate() is None
    clock.now = 611.0
    progress.advance(210, 51, 0.0, [0.0])  # 10 steps/s once compiled
    assert progress.estimate.rate() == 10.0 and progress.estimate.remaining() == 79.0
    assert len(lines) == 1 and "expected duration: 11 min 30 s" in lines[0]  # 611 s so far + 79 s
    # without waiting, the compilation counts as training: 110 steps in 610 s
    plain = Progress(total=1000, initial=0, warmup=100, enabled=False, clock=FakeClock(1.0), announce=lambda _: None)
    plain.advance(100, 0, 0.0, [])
    plain.clock.now = 611.0
    plain.advance(210, 51, 0.0, [])
    assert plain.estimate.rate() == 110 / 610
