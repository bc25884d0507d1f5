"""The access policy both servers share, checked on each of them over real sockets: the same requests get
the same answers from `serve` and from `review`."""

from __future__ import annotations

import http.client

import pytest

from whisper_adapt.access import bearer_token, check_bind, host_name, is_loopback, resolve_token
from whisper_adapt.cli import main
from whisper_adapt.errors import WhisperAdaptError

TOKEN = "t0ken-for-tests"


def test_loopback_names():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LocalHost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.5", "::", "example.org", "localhost.evil.com", ""]))


def test_host_headers_are_parsed_like_a_url_authority():
    assert [host_name(h) for h in ("127.0.0.1:8000", "[::1]:80", "localhost", "evil.com:1", "[::1")] == [
        "127.0.0.1", "::1", "localhost", "evil.com", ""]


def test_bearer_scheme_is_case_insensitive_and_needs_credentials():
    assert [bearer_token(h) for h in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER  {TOKEN} ")] == [TOKEN] * 3
    assert [bearer_token(h) for h in ("", TOKEN, f"Basic {TOKEN}", "Bearer ", "Bearer")] == [None] * 5


def test_binding_beyond_loopback_needs_a_token():
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)
    for host, token in (("0.0.0.0", None), ("127.0.0.1", " "), ("::", None)):
        with pytest.raises(WhisperAdaptError):
            check_bind(host, token)
    assert resolve_token("127.0.0.1", None) is None and resolve_token("::1", None) is None
    assert len(resolve_token("0.0.0.0", None)) >= 24 and resolve_token("0.0.0.0", "mine") == "mine"
    with pytest.raises(WhisperAdaptError):
        resolve_token("0.0.0.0", "")


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """(name, app factory taking a token, a path that needs access) for both servers."""
    from whisper_adapt.corpus import create_corpus
    from whisper_adapt.review.app import create_app as review_app
    from whisper_adapt.serve import create_app as serve_app

    corpus = tmp_path_factory.mktemp("access") / "corpus"
    create_corpus(corpus).close()
    # The served model is never loaded: listing models does not need it.
    return {"serve": (lambda token: serve_app({"m": "base"}, "m", token=token), "/v1/models"),
            "review": (lambda token: review_app(corpus, token=token), "/api/queue")}


# (token the server requires, request headers, expected status); "{host}" is the server's own address.
CASES = [
    (None, {}, 200),
    (None, {"Host": "localhost"}, 200),
    (None, {"Host": "[::1]:9"}, 200),
    (None, {"Host": "evil.example"}, 403),  # DNS rebinding: a page's own name resolved to 127.0.0.1
    (None, {"Host": "127.0.0.1.evil.example"}, 403),
    (TOKEN, {}, 401),
    (TOKEN, {"Authorization": f"Bearer {TOKEN}x"}, 401),
    (TOKEN, {"Authorization": TOKEN}, 401),
    (TOKEN, {"Authorization": f"Bearer {TOKEN}"}, 200),
    (TOKEN, {"Authorization": f"bearer {TOKEN}"}, 200),
    (TOKEN, {"Authorization": f"Bearer {TOKEN}", "Host": "transcribe.example.org"}, 200),  # any name with a token
]


@pytest.mark.parametrize("which", ["serve", "review"])
def test_both_servers_apply_the_same_policy(apps, serve_app, which):
    factory, path = apps[which]
    for token in (None, TOKEN):
        with serve_app(factory(token)) as url:
            for _, headers, status in [case for case in CASES if case[0] == token]:
                got, body, www = _get(url, path, headers)
                assert got == status, (which, headers, body)
                if status == 401:
                    assert www == "Bearer"
                if status != 200:
                    assert b"Traceback" not in body


def test_serve_health_is_open_to_monitors_but_host_checked(apps, serve_app):
    factory, _ = apps["serve"]
    with serve_app(factory(TOKEN)) as url:
        assert _get(url, "/health", {})[0] == 200
    with serve_app(factory(None)) as url:
        assert _get(url, "/health", {"Host": "evil.example"})[0] == 403


def test_cli_refuses_network_binds_without_a_token(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("WHISPER_ADAPT_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "0.0.0.0" in err and "--token" in err and "Traceback" not in err


def _get(url: str, path: str, headers: dict) -> tuple[int, bytes, str | None]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("GET", path, skip_host="Host" in headers)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("www-authenticate")
    finally:
        connection.close()
