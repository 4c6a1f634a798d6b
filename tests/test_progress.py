"""Progress of long loops (`seqnn.log.Progress`): periodic lines with counts, percentage, rate
and ETA in a log, a tqdm bar on a terminal (real runs: test_variants, test_interpret)."""

import io
import logging

import pytest

from seqnn import log as L


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    """A fake clock for `seqnn.log`: set `clock.now`, or `clock.step` to advance each read."""

    class Clock:
        now, step = 0.0, 0.0

        def __call__(self):
            self.now += self.step
            return self.now

    fake = Clock()
    monkeypatch.setattr(L, "perf_counter", fake)
    return fake


def lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "seqnn"]


def test_log_lines_every_interval_with_count_percentage_rate_eta_and_summary(clock, caplog):
    caplog.set_level(logging.INFO, "seqnn")
    stream = io.StringIO()
    with L.Progress(480, "gradients", "regions", stream=stream) as progress:
        for t, n in [(10, 60), (30, 60), (40, 120), (60, 120), (80, 120)]:
            clock.now = t
            progress.update(n)
    assert lines(caplog) == [
        "gradients: 120/480 regions (25%), 4/s, ETA 1m30s",  # 30 s after the start
        "gradients: 360/480 regions (75%), 6/s, ETA 20s",    # 30 s after the last line
        "gradients: 480 regions in 80.0 s (6/s)",
    ]
    assert stream.getvalue() == ""  # no bar off a terminal


def test_interval_zero_logs_every_update_and_formats_rates_and_durations(clock, caplog):
    caplog.set_level(logging.INFO, "seqnn")
    with L.Progress(10_000, "variants", "variants", interval=0, stream=io.StringIO()) as p:
        clock.now = 2.0
        p.update(250)
        clock.now = 5000.0
        p.update(1)
        clock.now = 5001.0
        p.update(9749)
    assert lines(caplog) == ["variants: 250/10000 variants (2%), 125/s, ETA 1m18s",
                             "variants: 251/10000 variants (3%), 0.0502/s, ETA 53h56m",
                             "variants: 10000/10000 variants (100%), 2/s, ETA 0s",
                             "variants: 10000 variants in 5001.0 s (2/s)"]


def test_no_summary_when_the_loop_fails(clock, caplog):
    caplog.set_level(logging.INFO, "seqnn")
    with pytest.raises(ValueError), L.Progress(3, "ism", "regions", stream=io.StringIO()) as p:
        p.update(1)
        raise ValueError
    assert lines(caplog) == []


def test_a_terminal_gets_a_bar_and_a_log_file_gets_lines(clock, caplog, tmp_path):
    caplog.set_level(logging.INFO, "seqnn")
    tty = Tty()
    with L.Progress(5, "predict", "windows", interval=0, stream=tty) as p:
        p.update(2)
        p.update(3)
    assert "predict: 100%" in tty.getvalue() and "5/5" in tty.getvalue()
    assert lines(caplog) == []
    # a rule's log (a log file open): lines, even with stderr a terminal
    tty = Tty()
    with L.logged(str(tmp_path / "rule.log")):
        with L.Progress(5, "predict", "windows", interval=0, stream=tty) as p:
            clock.now = 1.0
            p.update(5)
    assert tty.getvalue() == ""
    text = (tmp_path / "rule.log").read_text()
    assert "predict: 5/5 windows (100%), 5/s, ETA 0s" in text
    assert "predict: 5 windows in 1.0 s (5/s)" in text
