"""App name rules: valid DNS labels, lowercase, not reserved, with a message saying why not."""

from __future__ import annotations

import pytest

from fazt.errors import DeployError, InvalidAppName
from fazt.hosting._names import APP_NAME_RE, RESERVED_APP_NAMES, validate_app_name


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "0",
        "blog",
        "my-app",
        "app2",
        "2app",
        "a-b-c-d",
        "a--b",
        "x" * 63,
        "admin2",
        "www-site",
    ],
)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert validate_app_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("x" * 64, "64 characters long; the limit is 63"),
        ("MyApp", "use 'myapp'"),
        ("My-App-", "use 'my-app'"),
        ("BLOG", "use 'blog'"),
        ("-app", "must start with a letter or digit"),
        ("my_app", "only contain lowercase letters"),
        ("my.app", "only contain lowercase letters"),
        ("my app", "only contain lowercase letters"),
        ("app/x", "only contain lowercase letters"),
        ("café", "only contain lowercase letters"),
        ("Café", "only contain lowercase letters"),
        ("\u212aelvin", "only contain lowercase letters"),  # KELVIN SIGN lowercases to 'k'
        ("app\n", "only contain lowercase letters"),
        ("app-", "ends with a hyphen"),
        ("a-", "ends with a hyphen"),
        ("admin", "reserved"),
        ("api", "reserved"),
        ("www", "reserved"),
        ("root", "reserved"),
    ],
)
def test_invalid_names_say_why(name: str, reason: str) -> None:
    with pytest.raises(InvalidAppName) as caught:
        validate_app_name(name)
    assert reason in str(caught.value)


def test_invalid_name_is_a_deploy_error_with_its_own_code() -> None:
    with pytest.raises(DeployError) as caught:
        validate_app_name("Bad Name")
    assert caught.value.code == "invalid_app_name"
    assert caught.value.http_status == 422


def test_reserved_names_match_the_name_pattern() -> None:
    # Otherwise they would be rejected for their shape, never for being reserved.
    assert all(APP_NAME_RE.fullmatch(name) for name in RESERVED_APP_NAMES)
    assert sorted(RESERVED_APP_NAMES) == ["admin", "api", "root", "www"]
