"""The admin API over real HTTP: auth, apps, deploys, rollback, tokens, health, errors."""

from __future__ import annotations

import pytest

from tests.harness import FaztServer, make_archive

pytestmark = pytest.mark.integration


def _error(r) -> dict:
    body = r.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    return body["error"]


def test_public_health_and_index(server: FaztServer) -> None:
    with server.admin(token="") as client:
        health = client.get("/api/health")
        index = client.get("/api/")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert index.status_code == 200
    assert "GET /api/apps" in index.json()["endpoints"]
    assert "default-src 'none'" in health.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in health.headers["content-security-policy"]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer fazt_nope", "Basic abc",
                                    "Bearer " + "x" * 5000])
def test_token_required(server: FaztServer, header: str | None) -> None:
    headers = {"host": "localhost"}
    if header is not None:
        headers["authorization"] = header
    with server.admin(token="") as client:
        r = client.get("/api/apps", headers=headers)
    assert r.status_code == 401
    assert _error(r)["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


def test_system_health(server: FaztServer) -> None:
    with server.admin() as client:
        body = client.get("/api/system/health").json()
    assert body["status"] == "ok"
    assert body["version"]
    assert body["uptime_s"] >= 0
    assert body["memory"]["rss_bytes"] > 10 * 2**20
    assert body["database"]["db_bytes"] > 0
    assert body["apps"] >= 1


def test_deploy_serve_history_rollback_remove(server: FaztServer) -> None:
    assert server.deploy("blog", {"index.html": "v1"}, kind="zip").status_code == 201
    r = server.deploy("blog", {"index.html": "v2", "post/index.html": "a post"})
    assert r.status_code == 201
    second = r.json()["deploy"]["id"]
    assert r.json()["url"] == "http://blog.localhost:" + str(server.port) + "/"

    with server.app("blog") as site:
        assert site.get("/").text == "v2"
        assert site.get("/post/").text == "a post"
        with server.admin() as admin:
            info = admin.get("/api/apps/blog").json()
            assert info["deploys"][0]["id"] == second
            assert info["current"]["id"] == second

            r = admin.post("/api/apps/blog/rollback")
            assert r.status_code == 200, r.text
            assert site.get("/").text == "v1"
            assert site.get("/post/").status_code == 404

            r = admin.post("/api/apps/blog/rollback", json={"to": second})
            assert r.json()["deploy"]["id"] == second
            assert site.get("/").text == "v2"

            r = admin.post("/api/apps/blog/rollback", json={"to": 99999})
            assert r.status_code == 404
            assert _error(r)["code"] == "deploy_not_found"

            assert admin.delete("/api/apps/blog").status_code == 200
            assert admin.get("/api/apps/blog").status_code == 404
        assert site.get("/").status_code == 404


@pytest.mark.parametrize(("name", "code"), [
    ("Upper", "invalid_app_name"),
    ("admin", "invalid_app_name"),
    ("-x", "invalid_app_name"),
    ("a" * 64, "invalid_app_name"),
])
def test_deploy_rejects_bad_names(server: FaztServer, name: str, code: str) -> None:
    r = server.deploy(name, {"index.html": "x"})
    assert r.status_code == 422
    assert _error(r)["code"] == code


def test_deploy_rejects_hostile_archive_and_keeps_the_old_version(server: FaztServer) -> None:
    assert server.deploy("safe", {"index.html": "good"}).status_code == 201
    r = server.deploy("safe", {"index.html": "evil", "../../escape.txt": "x"})
    assert r.status_code == 422
    assert _error(r)["code"] == "archive_rejected"
    with server.admin() as admin:
        r = admin.post("/api/apps/safe/deploy", content=b"not an archive at all",
                       headers={"content-type": "application/zip"})
        assert r.status_code == 422
        r = admin.post("/api/apps/safe/deploy", content=b"",
                       headers={"content-type": "application/zip"})
        assert r.status_code == 400
        r = admin.post("/api/apps/safe/deploy", content=make_archive({"a": "b"}),
                       headers={"content-type": "multipart/form-data; boundary=x"})
        assert r.status_code == 415
        assert len(admin.get("/api/apps/safe").json()["deploys"]) == 1
    with server.app("safe") as site:
        assert site.get("/").text == "good"


def test_bad_manifest_is_rejected_with_the_key(server: FaztServer) -> None:
    r = server.deploy("manifesto", {"index.html": "x", "manifest.json": '{"spa": "yes"}'})
    assert r.status_code == 422
    err = _error(r)
    assert err["code"] == "invalid_manifest"
    assert '"spa"' in err["message"]


def test_unknown_endpoint_and_method(server: FaztServer) -> None:
    with server.admin() as admin:
        r = admin.get("/api/nope")
        assert r.status_code == 404
        assert _error(r)["code"] == "not_found"
        r = admin.put("/api/apps")
        assert r.status_code == 405
        assert _error(r)["code"] == "method_not_allowed"


def test_malformed_json_body(server: FaztServer) -> None:
    with server.admin() as admin:
        r = admin.post("/api/tokens", content=b"{nope",
                       headers={"content-type": "application/json"})
        assert r.status_code == 400
        assert _error(r)["code"] == "invalid_json"
        r = admin.post("/api/tokens", json=["list"])
        assert _error(r)["code"] == "invalid_json"
        r = admin.post("/api/tokens", json={"name": 5})
        assert _error(r)["code"] == "bad_request"


def test_tokens_create_list_revoke(server: FaztServer) -> None:
    with server.admin() as admin:
        r = admin.post("/api/tokens", json={"name": "ci"})
        assert r.status_code == 201
        secret = r.json()["secret"]
        token_id = r.json()["token"]["id"]
        listed = admin.get("/api/tokens").text
        assert secret not in listed, "secrets are never listed"
        assert token_id in listed
    with server.admin(secret) as ci:
        assert ci.get("/api/apps").status_code == 200
    with server.admin() as admin:
        assert admin.delete(f"/api/tokens/{token_id}").status_code == 200
        assert admin.delete("/api/tokens/tok_missing").status_code == 404
    with server.admin(secret) as ci:
        assert ci.get("/api/apps").status_code == 401


def test_request_id_kept_when_well_formed(server: FaztServer) -> None:
    with server.admin() as admin:
        r = admin.get("/api/nope", headers={"x-request-id": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        assert r.json()["error"]["request_id"] == "abc-123"
        r = admin.get("/api/nope", headers={"x-request-id": "bad id\twith junk"})
        assert r.headers["x-request-id"] != "bad id\twith junk"


def test_unknown_host_and_unknown_app(server: FaztServer) -> None:
    with server.app("doesnotexist") as client:
        assert client.get("/").status_code == 404
    import httpx

    with httpx.Client(base_url=server.url, headers={"host": "evil.example"},
                      trust_env=False) as client:
        assert client.get("/").status_code == 404


def test_admin_host_outside_api(server: FaztServer) -> None:
    with server.admin(token="") as client:
        root = client.get("/")
        assert root.status_code == 302
        assert root.headers["location"] == "/api/"
        other = client.get("/favicon.ico")
        assert other.status_code == 404
        assert _error(other)["code"] == "not_found"


def test_ip_literal_host_reaches_the_admin_api(server: FaztServer) -> None:
    import httpx

    with httpx.Client(base_url=server.url, trust_env=False) as client:  # Host: 127.0.0.1:port
        assert client.get("/api/health").json() == {"status": "ok"}


def test_405_names_the_allowed_methods(server: FaztServer) -> None:
    with server.admin() as admin:
        r = admin.patch("/api/tokens")
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) >= {"GET", "POST"}


def test_app_logs_route(server: FaztServer) -> None:
    with server.admin() as admin:
        r = admin.get("/api/apps/hello/logs")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["app"] == "hello"
        assert isinstance(body["lines"], list)
        assert body["next"] == (body["lines"][-1]["id"] if body["lines"] else 0)
        for line in body["lines"]:
            assert set(line) == {"id", "ts", "level", "request_id", "message"}

        # A long poll with nothing to report answers empty once its wait is over.
        r = admin.get("/api/apps/hello/logs", params={"after": 2**40, "wait": 0.2})
        assert r.status_code == 200
        assert r.json() == {"app": "hello", "lines": [], "next": 2**40}

        r = admin.get("/api/apps/nosuch/logs")
        assert r.status_code == 404
        assert _error(r)["code"] == "app_not_found"
        for query, named in [({"n": 0}, "n"), ({"n": "abc"}, "n"), ({"level": "bogus"}, "level"),
                             ({"wait": 5}, "wait")]:
            r = admin.get("/api/apps/hello/logs", params=query)
            assert r.status_code == 400, query
            error = _error(r)
            assert error["code"] == "bad_request"
            assert f'"{named}"' in error["message"]
    with server.admin(token="") as anonymous:
        r = anonymous.get("/api/apps/hello/logs")
        assert r.status_code == 401
        assert _error(r)["code"] == "unauthorized"
