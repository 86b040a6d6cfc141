"""Capabilities: what an app's handler may call beyond ``log`` and ``budget`` (DESIGN.md §4).

``log`` and ``budget`` live inside the worker (no round trip), and so do ``env``'s values,
sent with the app's code. Every other capability is a ``Provider``: named methods that run
in the server, inside the request's cancel scope, each given a ``Call`` (the app, the
request's Budget, the signed-in user, the quota) and the JSON arguments. What an app gets is
its manifest's ``capabilities`` intersected with the operator's policy (``AppSettings``); a call
to anything else is refused with ``capability_not_granted`` naming the manifest entry to add.
"""

from fazt.capabilities._manifest import GO_COMPAT as GO_COMPAT
from fazt.capabilities._manifest import KNOWN as KNOWN
from fazt.capabilities._manifest import EnvRequest as EnvRequest
from fazt.capabilities._manifest import NetRequest as NetRequest
from fazt.capabilities._manifest import Requested as Requested
from fazt.capabilities._manifest import StorageRequest as StorageRequest
from fazt.capabilities._manifest import parse_capabilities as parse_capabilities
from fazt.capabilities._net_log import NetLog as NetLog
from fazt.capabilities._net_log import NetLogEntry as NetLogEntry
from fazt.capabilities._net_policy import NetPolicy as NetPolicy
from fazt.capabilities._net_policy import NetRule as NetRule
from fazt.capabilities._net_policy import Secret as Secret
from fazt.capabilities._registry import Binary as Binary
from fazt.capabilities._registry import Call as Call
from fazt.capabilities._registry import Capabilities as Capabilities
from fazt.capabilities._registry import Grant as Grant
from fazt.capabilities._registry import GrantLimits as GrantLimits
from fazt.capabilities._registry import Method as Method
from fazt.capabilities._registry import Provider as Provider
from fazt.capabilities._registry import RawJson as RawJson
from fazt.capabilities._settings import AppSettings as AppSettings
from fazt.capabilities._settings import Policy as Policy

__all__ = ["GO_COMPAT", "KNOWN", "AppSettings", "Binary", "Call", "Capabilities", "EnvRequest",
           "Grant", "GrantLimits", "Method", "NetLog", "NetLogEntry", "NetPolicy", "NetRequest",
           "NetRule", "Policy", "Provider", "RawJson", "Requested", "Secret", "StorageRequest",
           "parse_capabilities"]
