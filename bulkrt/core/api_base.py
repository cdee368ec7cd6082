"""Checking `--api-base` before anything is sent: a scheme, a host, and no path of the API's own.

bulkrt appends ``/2/users/{id}/retweets`` (and ``/2/oauth2/token``) to the base itself, so a
base that already ends in ``/2`` or ``/v2`` would reach paths the API does not have, and every
answer would be a 404. Plain ``http://`` is refused unless the host is loopback (a local
sandbox) or the operator says ``--allow-insecure-http``: credentials and tokens travel in it.

>>> api_base("https://api.x.com/")
'https://api.x.com'
>>> api_base("http://127.0.0.1:8787")
'http://127.0.0.1:8787'
>>> api_base("127.0.0.1:8787")
Traceback (most recent call last):
...
ValueError: '127.0.0.1:8787' has no scheme: give http://127.0.0.1:8787 (a local sandbox)
>>> api_base("https://api.x.com/2/")
Traceback (most recent call last):
...
ValueError: 'https://api.x.com/2/' ends in the API's own path '/2': bulkrt adds /2/... itself; give https://api.x.com
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["api_base", "is_loopback"]

#: path segments of the API itself: a base ending in one of them doubles the API's path
_API_SEGMENTS = frozenset({"2", "v2", "1.1", "users", "retweets", "oauth2", "tweets"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_base(value: str, *, allow_insecure_http: bool = False) -> str:
    """``value`` as a base URL without a trailing slash, or `ValueError` saying what to give."""
    text = value.strip()
    if not text:
        raise ValueError("is empty: give the API's URL, e.g. https://api.x.com")
    if "://" not in text:
        local = is_loopback(urlsplit(f"//{text}").hostname or "")
        hint = f"http://{text} (a local sandbox)" if local else f"https://{text}"
        raise ValueError(f"{value!r} has no scheme: give {hint}")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"{value!r}: the scheme must be https (or http for a local sandbox)")
    try:
        host = parts.hostname
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"{value!r}: the port is not a number from 0 to 65535") from None
    if not host:
        raise ValueError(f"{value!r} has no host: e.g. https://api.x.com")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{value!r}: credentials do not belong in the URL; use the accounts file")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: a base URL has no query (?...) or fragment (#...)")
    path = parts.path.rstrip("/")
    root = f"{scheme}://{parts.netloc}"
    segments = [s for s in path.split("/") if s]
    api_own = [s for s in segments if s.lower() in _API_SEGMENTS]
    if api_own:
        where = "/" + "/".join(segments[segments.index(api_own[0]) :])
        prefix = "/" + "/".join(segments[: segments.index(api_own[0])])
        good = root + (prefix if prefix != "/" else "")
        raise ValueError(
            f"{value!r} ends in the API's own path {where!r}: bulkrt adds /2/... itself; "
            f"give {good}"
        )
    if scheme == "http" and not allow_insecure_http and not is_loopback(host):
        raise ValueError(
            f"{value!r} is plain http to another machine: credentials would travel unencrypted; "
            f"use https://{parts.netloc}{path} (or --allow-insecure-http for a trusted test "
            f"network)"
        )
    return root + path
