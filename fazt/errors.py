"""Every error fazt raises on purpose.

Each class carries a snake_case ``code`` and an ``http_status``. The HTTP layer turns any
``FaztError`` into ``{"error": {"code": ..., "message": ...}}``; for 5xx errors the message is
replaced by a generic one so that no stack trace, host path or SQL reaches a client.

    FaztError
    ├── ConfigError                    (process start-up; never an HTTP response)
    ├── RequestError                   400
    │   ├── BadRequest                 400 bad_request
    │   ├── InvalidJson                400 invalid_json
    │   ├── InvalidPath                400 invalid_path
    │   ├── Unauthorized               401 unauthorized
    │   ├── Forbidden                  403 forbidden
    │   ├── NotFound                   404 not_found
    │   │   ├── AppNotFound            404 app_not_found
    │   │   ├── DeployNotFound         404 deploy_not_found
    │   │   └── TokenNotFound          404 token_not_found
    │   ├── MethodNotAllowed           405 method_not_allowed
    │   ├── Conflict                   409 conflict
    │   ├── PayloadTooLarge            413 payload_too_large
    │   ├── UnsupportedMediaType       415 unsupported_media_type
    │   ├── RangeNotSatisfiable        416 range_not_satisfiable
    │   ├── SqlError                   400 sql_error
    │   └── SqlNotAllowed              403 sql_not_allowed
    ├── DeployError                    422 deploy_rejected
    │   ├── InvalidAppName             422 invalid_app_name
    │   ├── InvalidManifest            422 invalid_manifest
    │   └── ArchiveRejected            422 archive_rejected
    │       └── ArchiveTooLarge        413 archive_too_large
    ├── BudgetExceeded                 504 <phase>_timeout
    ├── SandboxError                   500 js_error
    │   ├── JsError                    500 js_error
    │   ├── JsMemory                   503 js_memory
    │   ├── JsCrashed                  502 js_crashed
    │   ├── JsBusy                     503 js_busy
    │   └── CapabilityError            400 capability_error
    │       ├── AuthRequired           401 auth_required
    │       ├── CapabilityNotGranted   403 capability_not_granted
    │       ├── InvalidQuery           400 invalid_query
    │       ├── DocumentExists         409 document_exists
    │       ├── KeyTooLarge            413 key_too_large
    │       ├── ValueTooLarge          413 value_too_large
    │       ├── QuotaExceeded          413 storage_quota
    │       └── NetError               502 net_upstream_error
    │           ├── NetBadUrl          400 net_bad_url
    │           ├── NetDenied          403 net_denied
    │           ├── NetBlockedAddress  403 net_blocked_address
    │           ├── NetTooManyCalls    429 net_too_many_calls
    │           ├── NetRateLimited     429 net_rate_limited
    │           ├── NetTooLarge        502 net_too_large
    │           └── NetTimeout         504 net_timeout
    └── StorageError                   500 storage_error
        ├── StorageBusy                503 storage_busy
        ├── StorageFull                507 storage_full
        ├── StorageClosed              503 storage_closed
        ├── StorageCorrupt             500 storage_corrupt
        └── WrongKey                   (start-up: the key does not open the database)
"""

from __future__ import annotations


class FaztError(Exception):
    """Root of every error fazt raises on purpose."""

    code: str = "internal_error"
    http_status: int = 500

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)

    def public_message(self) -> str:
        """What a client may see: the message for 4xx, a generic text for 5xx."""
        if self.http_status >= 500:
            return _GENERIC_5XX.get(self.http_status, "internal error")
        return self.message


_GENERIC_5XX = {
    500: "internal error",
    502: "bad gateway",
    503: "service temporarily unavailable, try again",
    504: "the request ran out of time",
    507: "storage is full",
}


class ConfigError(FaztError):
    """The configuration is invalid."""

    code = "config_error"


class RequestError(FaztError):
    """The request cannot be served as sent."""

    code = "bad_request"
    http_status = 400


class BadRequest(RequestError):
    """The request is malformed."""


class InvalidJson(RequestError):
    """The request body is not valid JSON."""

    code = "invalid_json"


class InvalidPath(RequestError):
    """The request path is malformed."""

    code = "invalid_path"


class Unauthorized(RequestError):
    """A valid bearer token is required."""

    code = "unauthorized"
    http_status = 401


class Forbidden(RequestError):
    """The credentials do not allow this."""

    code = "forbidden"
    http_status = 403


class NotFound(RequestError):
    """Nothing is here."""

    code = "not_found"
    http_status = 404


class AppNotFound(NotFound):
    """No such app."""

    code = "app_not_found"


class DeployNotFound(NotFound):
    """No such deploy."""

    code = "deploy_not_found"


class TokenNotFound(NotFound):
    """No such token."""

    code = "token_not_found"


class MethodNotAllowed(RequestError):
    """This method is not allowed here."""

    code = "method_not_allowed"
    http_status = 405


class Conflict(RequestError):
    """The request conflicts with the current state."""

    code = "conflict"
    http_status = 409


class PayloadTooLarge(RequestError):
    """The request body is too large."""

    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(RequestError):
    """The request body has an unsupported type."""

    code = "unsupported_media_type"
    http_status = 415


class RangeNotSatisfiable(RequestError):
    """The requested byte range is outside the file."""

    code = "range_not_satisfiable"
    http_status = 416


class SqlError(RequestError):
    """An operator's SQL statement failed: a syntax error, an unknown table, a constraint."""

    code = "sql_error"


class SqlNotAllowed(RequestError):
    """An operator's SQL statement does what it may not: a write without --write, ATTACH,
    transaction control, a PRAGMA that is not a read-only one."""

    code = "sql_not_allowed"
    http_status = 403


class DeployError(FaztError):
    """A deploy was rejected; nothing was written."""

    code = "deploy_rejected"
    http_status = 422


class InvalidAppName(DeployError):
    """The app name is not allowed."""

    code = "invalid_app_name"


class InvalidManifest(DeployError):
    """manifest.json is invalid."""

    code = "invalid_manifest"


class ArchiveRejected(DeployError):
    """The deploy archive is unsafe or malformed."""

    code = "archive_rejected"


class ArchiveTooLarge(ArchiveRejected):
    """The deploy archive exceeds a quota."""

    code = "archive_too_large"
    http_status = 413


class BudgetExceeded(FaztError):
    """An operation ran out of its time budget."""

    http_status = 504

    def __init__(self, message: str = "", *, phase: str) -> None:
        super().__init__(message or f"{phase} phase ran out of time", code=f"{phase}_timeout")
        self.phase = phase


class SandboxError(FaztError):
    """The app's JavaScript could not produce a response."""

    code = "js_error"
    http_status = 500


class JsError(SandboxError):
    """The app's handler threw, failed to load, or returned an invalid response.

    The details (the app's file and line) go to the app's log, never to the client.
    """

    code = "js_error"

    def public_message(self) -> str:
        return "the app's handler failed; its log has the details (fazt app logs APP)"


class JsMemory(SandboxError):
    """The app's worker ran out of its memory limit."""

    code = "js_memory"
    http_status = 503

    def public_message(self) -> str:
        return "the app's handler ran out of memory"


class JsCrashed(SandboxError):
    """The app's worker process died while handling the request."""

    code = "js_crashed"
    http_status = 502


class JsBusy(SandboxError):
    """No JS worker can be started for the app right now (memory limit reached)."""

    code = "js_busy"
    http_status = 503


class CapabilityError(SandboxError):
    """A capability call was refused. The app's JS gets an Error with this ``code``; if the
    handler lets it escape, the client gets this status and code (``capability_error_for``)."""

    code = "capability_error"
    http_status = 400


class CapabilityNotGranted(CapabilityError):
    """The app's manifest does not grant this capability."""

    code = "capability_not_granted"
    http_status = 403


class AuthRequired(CapabilityError):
    """A per-user capability (kv.user ...) was used by a request without a signed-in user."""

    code = "auth_required"
    http_status = 401


class KeyTooLarge(CapabilityError):
    """A key or name is over its size limit."""

    code = "key_too_large"
    http_status = 413


class ValueTooLarge(CapabilityError):
    """A value, document or blob is over its size limit."""

    code = "value_too_large"
    http_status = 413


class QuotaExceeded(CapabilityError):
    """The write would take the app over its storage quota; nothing was written."""

    code = "storage_quota"
    http_status = 413


class InvalidQuery(CapabilityError):
    """A docs query, sort or update is malformed (an unknown operator, a bad field path ...)."""

    code = "invalid_query"
    http_status = 400


class DocumentExists(CapabilityError):
    """docs.insert was given an ``_id`` the collection already has."""

    code = "document_exists"
    http_status = 409


class NetError(CapabilityError):
    """An outbound fetch failed upstream (DNS, connection, TLS, protocol)."""

    code = "net_upstream_error"
    http_status = 502


class NetBadUrl(NetError):
    """The URL cannot be fetched as written (scheme, credentials, a numeric host ...)."""

    code = "net_bad_url"
    http_status = 400


class NetDenied(NetError):
    """The host, scheme or port is not allowed for this app."""

    code = "net_denied"
    http_status = 403


class NetBlockedAddress(NetError):
    """The host resolves to an address that is not on the public Internet."""

    code = "net_blocked_address"
    http_status = 403


class NetTooManyCalls(NetError):
    """The request made more fetches than its limit (net_max_calls) allows."""

    code = "net_too_many_calls"
    http_status = 429


class NetRateLimited(NetError):
    """The destination's rate limit is used up for now."""

    code = "net_rate_limited"
    http_status = 429


class NetTooLarge(NetError):
    """A request or response body is over its size limit."""

    code = "net_too_large"
    http_status = 502


class NetTimeout(NetError):
    """The fetch ran out of time."""

    code = "net_timeout"
    http_status = 504


def capability_error_for(code: str, message: str) -> FaztError | None:
    """The CapabilityError or StorageError with this code, for an error a capability call
    raised and the handler did not catch: the client gets its status and code."""
    stack: list[type[FaztError]] = [CapabilityError, StorageError]
    while stack:
        cls = stack.pop()
        if cls.code == code:
            return cls(message)
        stack.extend(cls.__subclasses__())
    return None


class StorageError(FaztError):
    """The storage layer failed."""

    code = "storage_error"
    http_status = 500


class StorageBusy(StorageError):
    """The database is locked by someone else."""

    code = "storage_busy"
    http_status = 503


class StorageFull(StorageError):
    """The disk or database is full."""

    code = "storage_full"
    http_status = 507


class StorageClosed(StorageError):
    """The database is shutting down."""

    code = "storage_closed"
    http_status = 503


class StorageCorrupt(StorageError):
    """The database file is damaged."""

    code = "storage_corrupt"


class WrongKey(StorageError):
    """The database key does not open the existing database."""

    code = "wrong_key"
