"""App names: what a user may call an app.

An app name becomes a DNS label (``<name>.example.com``) and a path segment, so it is held to
the stricter of the two rules: lowercase ASCII letters, digits and hyphens, starting with a
letter or digit, not ending with a hyphen, at most 63 characters. A few names are reserved for
fazt itself.
"""

from __future__ import annotations

import re

from fazt.errors import InvalidAppName

__all__ = ["APP_NAME_RE", "MAX_APP_NAME_CHARS", "RESERVED_APP_NAMES", "validate_app_name"]

MAX_APP_NAME_CHARS = 63
"""The longest DNS label."""

APP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
"""Shape of an app name; a name must also not end with a hyphen (see ``validate_app_name``)."""

RESERVED_APP_NAMES = frozenset({"admin", "api", "www", "root"})
"""Names fazt keeps for its own hosts and routes."""


def validate_app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name, else raise ``InvalidAppName`` saying why.

    The checks run from the most to the least fundamental, so the message names the first
    thing the user has to fix.
    """
    if not name:
        raise InvalidAppName("app name is empty")
    if len(name) > MAX_APP_NAME_CHARS:
        raise InvalidAppName(
            f"app name is {len(name)} characters long; the limit is {MAX_APP_NAME_CHARS}"
        )
    if APP_NAME_RE.fullmatch(name) is None:
        lowered = name.lower()
        if name.isascii() and lowered != name and APP_NAME_RE.fullmatch(lowered) is not None:
            raise InvalidAppName(
                f"app name {name!r} has uppercase letters; use {lowered.rstrip('-')!r}"
            )
        if name.startswith("-"):
            raise InvalidAppName(f"app name {name!r} must start with a letter or digit")
        raise InvalidAppName(
            f"app name {name!r} may only contain lowercase letters a-z, digits and hyphens"
        )
    if name.endswith("-"):
        raise InvalidAppName(
            f"app name {name!r} ends with a hyphen, which is not a valid DNS label"
        )
    if name in RESERVED_APP_NAMES:
        raise InvalidAppName(f"app name {name!r} is reserved")
    return name
