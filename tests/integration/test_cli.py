"""The CLI against a real server: deploy with .gitignore, list, info, rollback, remove, tokens."""

from __future__ import annotations

import pytest

from tests.harness import FaztServer

pytestmark = pytest.mark.integration


def test_deploy_directory_skips_ignored_files(server: FaztServer, tmp_path) -> None:
    site = tmp_path / "My-Site"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_text("<h1>cli deploy</h1>")
    (site / "assets" / "app.js").write_text("console.log(1)")
    (site / ".env").write_text("SECRET=1")
    (site / "node_modules" / "dep").mkdir(parents=True)
    (site / "node_modules" / "dep" / "index.js").write_text("dep")
    (site / "debug.log").write_text("log")
    (site / ".gitignore").write_text("*.log\n")

    out = server.cli("app", "deploy", str(site), "--name", "cli-site")
    assert out.returncode == 0, out.stderr
    assert f"http://cli-site.localhost:{server.port}/" in out.stdout
    with server.app("cli-site") as client:
        assert client.get("/").text == "<h1>cli deploy</h1>"
        assert client.get("/assets/app.js").status_code == 200
        for hidden in ("/.env", "/node_modules/dep/index.js", "/debug.log"):
            assert client.get(hidden).status_code == 404, hidden
    with server.admin() as admin:
        assert admin.get("/api/apps/cli-site").json()["current"]["file_count"] == 2


def test_deploy_name_defaults_to_directory_and_is_validated(server: FaztServer, tmp_path) -> None:
    site = tmp_path / "docs"
    site.mkdir()
    (site / "index.html").write_text("docs")
    assert server.cli("app", "deploy", str(site)).returncode == 0
    with server.app("docs") as client:
        assert client.get("/").text == "docs"

    bad = tmp_path / "Bad_Name"
    bad.mkdir()
    (bad / "index.html").write_text("x")
    out = server.cli("app", "deploy", str(bad))
    assert out.returncode == 1
    assert "--name" in out.stderr


def test_list_info_rollback_remove(server: FaztServer, tmp_path) -> None:
    site = tmp_path / "roll"
    site.mkdir()
    for version in ("one", "two"):
        (site / "index.html").write_text(version)
        assert server.cli("app", "deploy", str(site)).returncode == 0

    listed = server.cli("app", "list")
    assert listed.returncode == 0
    assert "roll" in listed.stdout and "hello" in listed.stdout

    info = server.cli("app", "info", "roll")
    assert info.returncode == 0
    assert "live" in info.stdout

    assert server.cli("app", "rollback", "roll").returncode == 0
    with server.app("roll") as client:
        assert client.get("/").text == "one"

    assert server.cli("app", "remove", "roll", "--yes").returncode == 0
    missing = server.cli("app", "info", "roll")
    assert missing.returncode == 1
    assert "app_not_found" in missing.stderr


def test_token_commands(server: FaztServer) -> None:
    created = server.cli("token", "create", "--name", "laptop")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("fazt_")
    listed = server.cli("token", "list")
    assert "laptop" in listed.stdout
    assert secret not in listed.stdout
    token_id = next(line.split()[0] for line in listed.stdout.splitlines() if "laptop" in line)
    # strip table borders
    token_id = token_id.strip("│┃ ")
    if not token_id.startswith("tok_"):
        token_id = next(part.strip() for part in
                        next(line for line in listed.stdout.splitlines() if "laptop" in line)
                        .split("│") if part.strip().startswith("tok_"))
    assert server.cli("token", "revoke", token_id).returncode == 0
    with server.admin(secret) as client:
        assert client.get("/api/apps").status_code == 401


def test_cli_reports_unreachable_server(tmp_path) -> None:
    import subprocess
    import sys

    from tests.harness import clean_env, free_port

    env = clean_env(FAZT_URL=f"http://127.0.0.1:{free_port()}", FAZT_TOKEN="fazt_x")
    out = subprocess.run([sys.executable, "-m", "fazt", "app", "list"], env=env, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 1
    assert "cannot reach fazt" in out.stderr


def test_cli_finds_token_in_local_data_dir(server: FaztServer) -> None:
    import subprocess
    import sys

    from tests.harness import clean_env

    env = clean_env(FAZT_URL=server.url)
    out = subprocess.run([sys.executable, "-m", "fazt", "app", "list", "--data-dir",
                          str(server.data_dir)], env=env, text=True, capture_output=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "hello" in out.stdout


def test_local_token_is_never_sent_to_a_remote_url(server: FaztServer) -> None:
    from fazt.client import resolve_target

    remote = resolve_target(url="http://fazt.example.com:8080", token=None,
                            data_dir=str(server.data_dir))
    assert remote.token is None
    local = resolve_target(url=server.url, token=None, data_dir=str(server.data_dir))
    assert local.token == server.token


def test_case_colliding_files_are_a_clean_error(server: FaztServer, tmp_path) -> None:
    site = tmp_path / "clash"
    site.mkdir()
    (site / "Logo.png").write_bytes(b"a")
    (site / "logo.png").write_bytes(b"b")
    out = server.cli("app", "deploy", str(site))
    assert out.returncode == 1
    assert "differ only in case" in out.stderr
    assert "Traceback" not in out.stderr


def test_url_without_scheme_is_a_clear_error(server: FaztServer) -> None:
    out = server.cli("app", "list", "--url", f"127.0.0.1:{server.port}")
    assert out.returncode == 1
    assert "must start with http://" in out.stderr


def test_piped_output_is_not_wrapped(server: FaztServer) -> None:
    out = server.cli("app", "list")   # stdout is a pipe and COLUMNS is not set
    assert out.returncode == 0
    assert f"http://hello.localhost:{server.port}/" in out.stdout


def test_app_logs(server: FaztServer) -> None:
    out = server.cli("app", "logs", "hello", "-n", "5")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    if not out.stdout:   # the static example app logs nothing
        assert "no log lines for hello" in out.stderr
    missing = server.cli("app", "logs", "nosuch")
    assert missing.returncode == 1
    assert "app_not_found" in missing.stderr
    bad = server.cli("app", "logs", "hello", "--level", "bogus")
    assert bad.returncode == 2   # a usage error, refused before any request
    assert "bogus" in bad.stderr


def test_app_logs_follow_stops_quietly_on_ctrl_c(server: FaztServer) -> None:
    import signal
    import subprocess
    import sys

    from tests.harness import clean_env

    env = clean_env(FAZT_URL=server.url, FAZT_TOKEN=server.token)
    proc = subprocess.Popen([sys.executable, "-m", "fazt", "app", "logs", "hello", "-f"],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()   # printed just before the first long poll
        assert "following hello" in first, first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "Aborted" not in err


def test_log_lines_print_untrusted_messages_inertly(capsys) -> None:
    from fazt.cli import _print_log_lines

    _print_log_lines([
        {"id": 1, "ts": "2026-11-22T05:14:45.123Z", "level": "warn", "request_id": "r-1",
         "message": "[bold]not markup[/] \x1b]0;pwned\x07 \x9b2J tab\there"},
        {"id": 2, "ts": "2026-11-22T05:14:45.124Z", "level": "info", "request_id": None,
         "message": "two\n2026-11-22T00:00:00.000Z ERROR [-] forged"},
    ])
    assert capsys.readouterr().out.splitlines() == [
        "2026-11-22T05:14:45.123Z WARN [r-1] [bold]not markup[/] \\x1b]0;pwned\\x07 \\x9b2J "
        "tab\there",
        "2026-11-22T05:14:45.124Z INFO [-] two",
        "    2026-11-22T00:00:00.000Z ERROR [-] forged",
    ]
