"""The HTTP layer: the root ASGI app, the admin API and the static fast path."""

from fazt.http._admin import AdminContext as AdminContext
from fazt.http._admin import create_admin_app as create_admin_app
from fazt.http._root import RootApp as RootApp

__all__ = ["AdminContext", "RootApp", "create_admin_app"]
