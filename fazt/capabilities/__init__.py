"""Capabilities: what an app's handler may call beyond ``log`` and ``budget`` (DESIGN.md §4).

``log`` and ``budget`` live inside the worker (no round trip). Every other capability is a
``Provider``: named methods that run in the server, inside the request's cancel scope, each
given the app, the JSON arguments and the request's Budget. The storage and network
capabilities of later issues plug in here; today the manifest grants none, so a call from JS
is refused with ``capability_not_granted`` naming the manifest entry to add.
"""

from fazt.capabilities._registry import Capabilities as Capabilities
from fazt.capabilities._registry import Method as Method
from fazt.capabilities._registry import Provider as Provider

__all__ = ["Capabilities", "Method", "Provider"]
