"""The HTTP layer: the root ASGI app, the admin API, the app API gateway, the static fast path."""

from fazt.http._admin import AdminContext as AdminContext
from fazt.http._admin import create_admin_app as create_admin_app
from fazt.http._api import ApiGateway as ApiGateway
from fazt.http._api import ApiLimits as ApiLimits
from fazt.http._root import RootApp as RootApp
from fazt.http._send_guard import SendGuard as SendGuard
from fazt.http._send_guard import install_send_guard as install_send_guard

__all__ = ["AdminContext", "ApiGateway", "ApiLimits", "RootApp", "SendGuard", "create_admin_app",
           "install_send_guard"]
