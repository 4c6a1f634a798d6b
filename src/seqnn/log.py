"""Logging for jobs: messages to a log file and stderr; user errors as one line."""

from __future__ import annotations

import contextlib
import logging
import sys

from seqnn import SeqnnError

logger = logging.getLogger("seqnn")


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
