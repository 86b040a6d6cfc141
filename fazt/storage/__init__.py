"""Storage: one SQLCipher file, one writer thread with group commit, a pool of readers.

Every operation takes an absolute trio deadline and is interrupted when it passes. See
``Database`` for the read/write contract, ``resolve_key`` for where the key comes from and
``backup_database`` for online backups. This package never imports the HTTP layer.
"""

from ._backup import BackupResult as BackupResult
from ._backup import backup_database as backup_database
from ._chaos import Chaos as Chaos
from ._chaos import Fault as Fault
from ._connect import open_connection as open_connection
from ._database import Database as Database
from ._database import StorageSettings as StorageSettings
from ._database import StorageStats as StorageStats
from ._errors import map_sqlite_errors as map_sqlite_errors
from ._keys import resolve_key as resolve_key
from ._lock import lock_data_dir as lock_data_dir
from ._sql import SqlResult as SqlResult
from ._sql import run_statement as run_statement

__all__ = [
    "BackupResult",
    "Chaos",
    "Database",
    "Fault",
    "SqlResult",
    "StorageSettings",
    "StorageStats",
    "backup_database",
    "lock_data_dir",
    "map_sqlite_errors",
    "open_connection",
    "resolve_key",
    "run_statement",
]
