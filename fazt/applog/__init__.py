"""App logs: what apps' serverless JavaScript prints, stored per app in the database.

``AppLogStore`` buffers lines in memory, writes them in group commits from its service loop,
keeps each app to its newest lines, and serves them by id (paging, following, long-polling).
This package never imports the HTTP layer.
"""

from fazt.applog._store import LEVELS as LEVELS
from fazt.applog._store import MAX_MESSAGE_CHARS as MAX_MESSAGE_CHARS
from fazt.applog._store import AppLogStore as AppLogStore
from fazt.applog._store import LogLine as LogLine

__all__ = ["LEVELS", "MAX_MESSAGE_CHARS", "AppLogStore", "LogLine"]
