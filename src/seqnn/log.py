"""Logging for jobs: messages to a log file and stderr; user errors as one line; progress of
long loops (a bar on a terminal, periodic lines in a log)."""

from __future__ import annotations

import contextlib
import logging
import sys
from time import perf_counter

from tqdm import tqdm

from seqnn import SeqnnError

logger = logging.getLogger("seqnn")

INTERVAL = 30.0  # seconds between progress lines in a log


@contextlib.contextmanager
def logged(path: str | None = None):
    """Log to `path` (and stderr) inside the block; a SeqnnError exits with its one line."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if path:
        handlers.append(logging.FileHandler(path, mode="w"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    logger.setLevel(logging.INFO)
    try:
        yield logger
    except SeqnnError as e:
        logger.error("%s", e)
        sys.exit(1)
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()


def _rate(n: float, seconds: float) -> str:
    rate = n / max(seconds, 1e-9)
    return f"{rate:.3g}" if rate < 100 else f"{rate:,.0f}"


def _duration(seconds: float) -> str:
    """1h02m, 1m28s or 45s."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """Progress of a loop over `total` items, advanced by `update(n)`. On a terminal (`stream`,
    default stderr, a tty and no log file open) a tqdm bar with rate and ETA; otherwise, as in
    a rule's log, a line through the seqnn logger every `interval` seconds
    ("gradients: 120/480 regions (25%), 4.1/s, ETA 1m28s") and a summary at the end."""

    def __init__(self, total: int, what: str, unit: str = "items", *,
                 interval: float = INTERVAL, stream=None):
        self.total, self.what, self.unit, self.interval = total, what, unit, interval
        self.stream = sys.stderr if stream is None else stream
        self.done, self.bar = 0, None

    def __enter__(self) -> Progress:
        if self.stream.isatty() and not any(isinstance(h, logging.FileHandler)
                                            for h in logger.handlers):
            self.bar = tqdm(total=self.total, desc=self.what, unit=self.unit, file=self.stream,
                            dynamic_ncols=True)
        self.start = self.last = perf_counter()
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            logger.info("%s", self._line(now - self.start))

    def _line(self, seconds: float) -> str:
        """The progress after `seconds`: count, percentage, rate and ETA."""
        left = (self.total - self.done) * seconds / max(self.done, 1)
        return (f"{self.what}: {self.done}/{self.total} {self.unit} "
                f"({100 * self.done / max(self.total, 1):.0f}%), {_rate(self.done, seconds)}/s, "
                f"ETA {_duration(left)}")

    def __exit__(self, kind, *_) -> None:
        if self.bar is not None:
            self.bar.close()
        elif kind is None:
            seconds = perf_counter() - self.start
            logger.info("%s: %d %s in %.1f s (%s/s)", self.what, self.done, self.unit, seconds,
                        _rate(self.done, seconds))
