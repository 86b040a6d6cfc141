"""A real encrypted Database with fazt's own migrations, for service-level tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fazt.storage import Database, StorageSettings


@contextmanager
def open_core_db(path: Path) -> Iterator[Database]:
    db = Database.open(StorageSettings(path=path / "fazt.db", key=secrets.token_bytes(32),
                                       readers=2))
    try:
        yield db
    finally:
        db.close()
