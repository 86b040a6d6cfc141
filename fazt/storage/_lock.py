"""One server per data dir: an exclusive advisory lock held for the process's lifetime.

Two servers on one database would each believe they are the only writer and serve from stale
in-memory caches. ``flock`` on the data dir itself (Linux allows it on a directory) is released by
the kernel when the process dies, kill -9 included, so there is no stale lock file to clean up,
and nothing is added to the data dir.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fazt.errors import ConfigError


@contextmanager
def lock_data_dir(data_dir: Path) -> Iterator[None]:
    fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(f"another fazt is already running with data dir {data_dir}") \
                from exc
        yield
    finally:
        os.close(fd)
