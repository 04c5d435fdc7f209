"""TLS on the web server (SPEC §7): ``tls_cert``/``tls_key`` make ``dagserver serve`` speak only HTTPS.

A self-signed certificate for 127.0.0.1 is made at test time with the ``openssl`` command; the
client trusts exactly that certificate. One real server for the module answers the HTTPS checks;
the config checks need no server, except two that show ``serve`` refusing to start.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervision.config import ServerConfigError, parse_server_config
from tests.support.services import unavailable
from tests.support.supervised import DAGSERVER, SupervisedServer, free_port, metronome_dag
from tests.support.weblogin import FormClient, oversized_post_status


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)``: a self-signed certificate for IP 127.0.0.1, valid for a day."""
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("the openssl command is not installed (apt-get install openssl)")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([str(openssl), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("pem"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pem: tuple[Path, Path]) -> Iterator[SupervisedServer]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = pem
    with SupervisedServer(tmp, {"clock": metronome_dag("clock", tmp / "clock.jsonl", interval=0.2)}, workers=1,
                          top_keys={"tls_cert": str(cert), "tls_key": str(key)}, cafile=cert) as running:
        yield running


def plain_http_status(port: int) -> int | None:
    """The status a plain-HTTP GET of /healthz gets from ``port``; None when the connection fails."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError):
        return None


def https_login(server: SupervisedServer, name: str, password: str) -> tuple[int, Any]:
    """The status and headers of a login form POST over HTTPS (with the form's CSRF token); redirects are
    not followed."""
    client = FormClient(server.base_url, context=server.tls_context)
    status, headers, _ = client.request("POST", "/login", {"csrf_token": client.form_token(), "username": name,
                                                           "password": password})
    return status, headers


def test_https_answers_with_the_configured_certificate(server: SupervisedServer) -> None:
    assert server.base_url == f"https://127.0.0.1:{server.port}"
    assert server.get_ok("/healthz")["status"] == "ok"  # verified against cert.pem (cafile)
    server.wait_dags("running")  # the token-authenticated API works over HTTPS too
    assert "dagserver_" in server.metrics()


def test_plain_http_to_the_tls_port_gets_nothing_served(server: SupervisedServer) -> None:
    # cheroot answers 400 "only speaks HTTPS" or the connection is reset before that: never the page
    assert plain_http_status(server.port) in (None, 400)
    assert server.get_ok("/healthz")["status"] == "ok"  # and the server is unharmed


def test_the_session_cookie_is_secure_over_tls(server: SupervisedServer) -> None:
    status, headers = https_login(server, "viewer", "pw-viewer")
    assert status == 302, status
    cookie = next(c for c in headers.get_all("Set-Cookie") if c.startswith("dagserver_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite"} <= attributes, cookie
    assert "SameSite=Lax" in cookie
    assert headers["Strict-Transport-Security"]


def test_a_body_over_the_limit_is_413_over_tls_too(server: SupervisedServer) -> None:
    assert oversized_post_status(server, "/api/dags") == 413
    assert oversized_post_status(server, "/api/dags/clock/clone") == 413
    assert oversized_post_status(server, "/api/dags", chunked=True) == 413  # no Content-Length to go by
    assert server.get_ok("/healthz")["status"] == "ok"


def test_the_log_gives_https_urls(server: SupervisedServer) -> None:
    log = server.log()
    assert f"https://127.0.0.1:{server.port}/login" in log
    assert f"http://127.0.0.1:{server.port}" not in log


# -- config -------------------------------------------------------------------------------------------
def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ServerConfigError) as caught:
        parse_server_config(data, "sup.toml")
    return str(caught.value).splitlines()


def test_both_keys_make_tls_and_neither_makes_plain_http(pem: tuple[Path, Path]) -> None:
    cert, key = str(pem[0]), str(pem[1])
    assert parse_server_config({"tls_cert": cert, "tls_key": key}).tls == (cert, key)
    assert parse_server_config({}).tls is None


@pytest.mark.parametrize(("given", "missing"), [("tls_cert", "tls_key"), ("tls_key", "tls_cert")])
def test_one_key_without_the_other_is_an_error_saying_how_to_fix_it(pem: tuple[Path, Path], given: str,
                                                                    missing: str) -> None:
    path = str(pem[0] if given == "tls_cert" else pem[1])
    [line] = problems_of({given: path})
    assert line.startswith(f"sup.toml: {missing}: missing")
    assert given in line and f"set {missing} too, or remove {given}" in line


def test_a_missing_or_bad_path_is_named(pem: tuple[Path, Path], tmp_path: Path) -> None:
    gone = tmp_path / "nope" / "key.pem"
    [line] = problems_of({"tls_cert": str(pem[0]), "tls_key": str(gone)})
    assert line.startswith("sup.toml: tls_key: cannot read") and str(gone) in line and "No such file" in line
    lines = problems_of({"tls_cert": 443, "tls_key": str(tmp_path)})  # a number; a folder
    assert any(line.startswith("sup.toml: tls_cert: must be the path of a PEM file") for line in lines)
    assert any(line.startswith("sup.toml: tls_key: cannot read") and str(tmp_path) in line for line in lines)


def serve_refusal(tmp_path: Path, cert: Path, key: Path) -> subprocess.CompletedProcess[str]:
    """What ``dagserver serve`` says when it refuses a TLS config (it must exit, with 2)."""
    (tmp_path / "dags").mkdir(exist_ok=True)
    config = tmp_path / "sup.toml"
    config.write_text(f'workers = 1\ndags = ["{tmp_path / "dags"}"]\nstate_dir = "{tmp_path / "state"}"\n'
                      f'users = "{tmp_path / "users.json"}"\nbind = "127.0.0.1:{free_port()}"\n'
                      f'tls_cert = "{cert}"\ntls_key = "{key}"\n')
    refused = subprocess.run([str(DAGSERVER), "serve", "-c", str(config)], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
    assert refused.returncode == 2, (refused.returncode, refused.stdout, refused.stderr)
    return refused


def test_serve_refuses_to_start_without_the_key_file(pem: tuple[Path, Path], tmp_path: Path) -> None:
    refused = serve_refusal(tmp_path, pem[0], tmp_path / "missing-key.pem")
    assert f"tls_key: cannot read {tmp_path / 'missing-key.pem'}" in refused.stderr


def test_serve_refuses_files_that_are_not_a_certificate_and_its_key(pem: tuple[Path, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    refused = serve_refusal(tmp_path, pem[0], junk)
    assert "tls_cert/tls_key" in refused.stderr and str(junk) in refused.stderr, refused.stderr
