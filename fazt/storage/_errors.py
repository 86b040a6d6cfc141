"""Translate sqlite/SQLCipher exceptions into fazt's error tree.

This is the only place that looks at sqlite error codes and messages. Translation happens at the
storage boundary (the worker threads and the connection helpers), most specific first, and the
original exception is always kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlcipher3

from fazt.errors import (
    BudgetExceeded,
    FaztError,
    StorageBusy,
    StorageCorrupt,
    StorageError,
    StorageFull,
)

# (sqlite error-name prefixes, message fragments, factory), most specific first.
_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...], type[StorageError] | None], ...] = (
    (("SQLITE_INTERRUPT",), ("interrupted",), None),  # None = BudgetExceeded(phase="storage")
    (
        ("SQLITE_BUSY", "SQLITE_LOCKED"),
        ("database is locked", "busy", "table is locked"),
        StorageBusy,
    ),
    (("SQLITE_FULL",), ("database or disk is full",), StorageFull),
    (("SQLITE_NOTADB", "SQLITE_CORRUPT"), ("file is not a database", "malformed"), StorageCorrupt),
)


def translate_sqlite_error(exc: BaseException) -> BaseException:
    """Return the fazt error for ``exc`` (with ``__cause__`` set), or ``exc`` itself.

    FaztErrors and exceptions that do not come from sqlite are returned unchanged: they are the
    caller's own errors and must reach the caller as they were raised.
    """
    if isinstance(exc, FaztError) or not isinstance(exc, sqlcipher3.Error):
        return exc
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    message = str(exc)
    lowered = message.lower()
    translated: FaztError | None = None
    for prefixes, fragments, factory in _RULES:
        if name.startswith(prefixes) or any(fragment in lowered for fragment in fragments):
            translated = BudgetExceeded(phase="storage") if factory is None else factory(message)
            break
    if translated is None:
        translated = StorageError(message)
    translated.__cause__ = exc
    return translated


@contextmanager
def map_sqlite_errors() -> Iterator[None]:
    """Re-raise sqlite exceptions raised inside the block as fazt errors (``raise X from exc``)."""
    try:
        yield
    except sqlcipher3.Error as exc:
        raise translate_sqlite_error(exc) from exc
