"""Who may talk to our servers: one policy for `serve` and `review`, decided here once.

- Loopback by default. A server bound beyond this machine needs a token (`check_bind`; review may make one
  up with `resolve_token`, since it prints the address to open anyway).
- Without a token, a request must name the server by a loopback address or `localhost` in its Host header:
  a web page the user visits could otherwise reach the loopback server through DNS rebinding (its own name
  made to resolve to 127.0.0.1), and read recordings or transcripts.
- With a token, every request must carry it; the Host check is then moot (a rebinding page does not know
  the token) and clients may address the server by any name.
- Tokens are compared in constant time, and `Authorization: Bearer` is read case-insensitively (RFC 9110
  makes auth schemes case-insensitive).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from whisper_adapt.errors import WhisperAdaptError

LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class Refusal:
    """Why a request is turned away: the HTTP status, a message for the client, and headers to send."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, `[::1]`, or a name) surely means this machine; other names may resolve anywhere."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token: recordings are confidential."""
    if token is not None and not token.strip():
        raise WhisperAdaptError("the token is empty")
    if token is None and not is_loopback(host):
        raise WhisperAdaptError(f"binding {host} makes the server reachable from the network: give --token "
                                "(or set WHISPER_ADAPT_TOKEN), or bind 127.0.0.1")


def resolve_token(host: str, token: str | None) -> str | None:
    """The token a server will require: the one given, or a new random one when binding beyond loopback."""
    if token is not None and not token.strip():
        raise WhisperAdaptError("the token is empty")
    if token is None and not is_loopback(host):
        return secrets.token_urlsafe(24)
    return token


def bearer_token(authorization: str) -> str | None:
    """The credentials of an `Authorization: Bearer …` header (any case of "Bearer"), else None."""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def host_name(host_header: str) -> str:
    """The host part of a Host header (`[::1]:8000` → `::1`); empty when it cannot be parsed."""
    try:
        return urlsplit(f"//{host_header.strip()}").hostname or ""
    except ValueError:  # e.g. an invalid port or an unclosed bracket
        return ""


def check_request(token: str | None, host_header: str | None, offered: Iterable[str | None]) -> Refusal | None:
    """None when the request may proceed; else the refusal. `offered`: the tokens the request carries
    (the Bearer credentials, and for the review page its ?token= and cookie)."""
    if token is None:
        # A request without a Host header (HTTP/1.0) comes from no browser, so it cannot be a rebinding page.
        if host_header is not None and not is_loopback(host_name(host_header)):
            return Refusal(403, "address this server as 127.0.0.1 or localhost (the Host header names "
                                f"{host_header[:100]!r})")
        return None
    if not any(value and token_matches(value, token) for value in offered):
        return Refusal(401, "missing or wrong token: send it as 'Authorization: Bearer <token>'",
                       {"WWW-Authenticate": "Bearer"})
    return None


def token_matches(offered: str, token: str) -> bool:
    # compare_digest: the time taken must not reveal how much of a guessed token was right.
    return hmac.compare_digest(offered.encode(), token.encode())
