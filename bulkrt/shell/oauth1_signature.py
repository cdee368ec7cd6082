"""OAuth 1.0a HMAC-SHA1 signatures (RFC 5849) for the two requests bulkrt sends: the retweet, a POST
whose JSON body is not signed (only a form-encoded body is, §3.4.1.3.1), and the undo, a DELETE.

Neither request has a query string, and no other parameter is signed than the protocol's own, so the
normalised parameters (§3.4.1.3.2) are the six ``oauth_*`` pairs in a fixed order: consumer key,
nonce, signature method, timestamp, token, version. Everything but the nonce and the timestamp is
an account's constant, prepared once in `OAuth1Key` together with the HMAC keyed with
``encode(consumer secret) & encode(token secret)`` (§3.4.2), which each request copies. A request
costs the encoding of its URL, one HMAC and the header's formatting. A URL with a query is refused,
since its parameters would have to be signed too.

The header has oauthlib's parameter order, so it is byte for byte what oauthlib's
``Client.sign`` makes for the same nonce and timestamp (tests/test_oauth1_signature.py checks that
over a randomized table; oauthlib stays the reference and the sandbox's verifier).

>>> key = OAuth1Key("ck", "cs", "12-tok", "ts")
>>> header = key.authorization("DELETE", "https://API.x.com:443/2/users/12/retweets/9", "n0", 7)
>>> header[:79]
'OAuth oauth_nonce="n0", oauth_timestamp="7", oauth_version="1.0", oauth_signatu'
>>> base_string_uri("HTTP://EXAMPLE.COM:80/r%20v/X?id=123")
'http://example.com/r%20v/X'
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from base64 import b64encode
from collections import deque
from functools import lru_cache
from urllib.parse import quote, urlsplit

__all__ = ["OAuth1Key", "base_string_uri", "fresh_nonce", "percent_encode"]

#: the characters §3.6 leaves as they are (ALPHA, DIGIT, "-", ".", "_", "~"), and "/"
_UNRESERVED_OR_SLASH = re.compile(r"[A-Za-z0-9._~/-]*").fullmatch
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*").fullmatch
#: the ports §3.4.1.2 leaves out of the base string URI
_DEFAULT_PORTS = {"http": 80, "https": 443}


def percent_encode(text: str) -> str:
    """§3.6: the UTF-8 bytes of ``text``, each but ALPHA DIGIT ``-._~`` as ``%XX`` (upper case).

    >>> percent_encode("Ladies + Gentlemen/ü~")
    'Ladies%20%2B%20Gentlemen%2F%C3%BC~'
    """
    return text if _UNRESERVED(text) else quote(text, safe="~")


#: nonces drawn ahead, 64 at a time: one ``getrandom`` system call per nonce cost more than the
#: rest of the nonce (`collections.deque` takes them off atomically, from any thread)
_NONCES: deque[str] = deque()
#: a child process draws its own: a nonce its parent also used would be refused as a replay
os.register_at_fork(after_in_child=_NONCES.clear)


def fresh_nonce() -> str:
    """A new nonce: 32 random hex digits (nothing in it needs encoding), 16 bytes of the
    operating system's randomness as `secrets.token_hex` gives them.

    >>> len(fresh_nonce()), fresh_nonce() != fresh_nonce()
    (32, True)
    """
    try:
        return _NONCES.popleft()
    except IndexError:
        drawn = secrets.token_hex(16 * 64)
        _NONCES.extend([drawn[i : i + 32] for i in range(32, len(drawn), 32)])
        return drawn[:32]


@lru_cache(maxsize=64)
def _origin(origin: str) -> str:
    """``scheme://host[:port]`` as §3.4.1.2 wants it: scheme and host in lower case, an IP address
    in its canonical form, the scheme's default port left out, any other port kept."""
    parts = urlsplit(origin)
    scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    if not scheme:
        raise ValueError(f"no scheme in {origin!r}")
    if not host:
        raise ValueError(f"no host in {origin!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        host = f"[{address}]" if address.version == 6 else str(address)
    if port is not None and not 0 < port <= 65535:
        raise ValueError(f"port out of range in {origin!r}")
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}".replace(" ", "%20")


def _split(url: str) -> tuple[str, str]:
    """``url`` as its origin (scheme, authority) and its path ("/" when it has none)."""
    authority = url.find("://")
    if authority < 0:
        raise ValueError(f"not an absolute URL: {url!r}")
    cut = url.find("/", authority + 3)
    if cut < 0:
        return url, "/"
    return url[:cut], url[cut:]


def base_string_uri(url: str) -> str:
    """The base string URI of §3.4.1.2: the origin normalised (`_origin`), the path as sent (a
    space in it as ``%20``), without the query and the fragment.

    >>> base_string_uri("https://www.example.net:8080/?q=1")
    'https://www.example.net:8080/'
    """
    origin, path = _split(url.partition("#")[0].partition("?")[0])
    return _origin(origin) + path.replace(" ", "%20")


@lru_cache(maxsize=4096)
def _encoded_uri(url: str) -> str:
    """`percent_encode` of `base_string_uri` for a URL without query or fragment, cached: an
    account's retweet URL is the same for each of its requests (and the origin's part is cached
    apart, for the undo URLs, one per Tweet; an API path is mostly digits, letters and slashes)."""
    if "?" in url or "#" in url:
        raise ValueError(f"a URL to sign has no query or fragment here: {url!r}")
    origin, path = _split(url)
    if _UNRESERVED_OR_SLASH(path):
        return _encoded_origin(origin) + path.replace("/", "%2F")
    return _encoded_origin(origin) + quote(path.replace(" ", "%20"), safe="~")


@lru_cache(maxsize=64)
def _encoded_origin(origin: str) -> str:
    return quote(_origin(origin), safe="~")


class OAuth1Key:
    """One account's OAuth 1.0a key material, prepared once; `authorization` signs one request.

    >>> OAuth1Key("ck", "cs", "tok", "ts")
    OAuth1Key(consumer_key='ck')
    """

    __slots__ = ("_base_nonce", "_base_timestamp", "_base_rest", "_consumer_key", "_head", "_mac")

    def __init__(
        self, consumer_key: str, consumer_secret: str, token: str, token_secret: str
    ) -> None:
        if not consumer_key or not token:
            raise ValueError("a consumer key and an access token are needed")
        self._consumer_key = consumer_key
        key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
        self._mac = hmac.new(key.encode(), digestmod=hashlib.sha1)
        consumer, tok = percent_encode(consumer_key), percent_encode(token)
        # The normalised parameters, sorted by name (§3.4.1.3.2), around the nonce and the
        # timestamp, already encoded again for the base string (§3.4.1.1): encoding works byte by
        # byte, so encoding the pieces is encoding the whole.
        self._base_nonce = percent_encode(f"oauth_consumer_key={consumer}&oauth_nonce=")
        self._base_timestamp = percent_encode("&oauth_signature_method=HMAC-SHA1&oauth_timestamp=")
        self._base_rest = percent_encode(f"&oauth_token={tok}&oauth_version=1.0")
        self._head = (
            '", oauth_version="1.0", oauth_signature_method="HMAC-SHA1", '
            f'oauth_consumer_key="{consumer}", oauth_token="{tok}", oauth_signature="'
        )

    def __repr__(self) -> str:
        return f"OAuth1Key(consumer_key={self._consumer_key!r})"

    def authorization(self, method: str, url: str, nonce: str, timestamp: int) -> str:
        """The ``Authorization`` header of a request to ``url`` (no query) with this nonce and
        timestamp (seconds since the epoch)."""
        nonce = percent_encode(nonce)
        encoded_uri = _encoded_uri(url)
        base = (
            f"{method.upper()}&{encoded_uri}&{self._base_nonce}{percent_encode(nonce)}"
            f"{self._base_timestamp}{timestamp}{self._base_rest}"
        )
        mac = self._mac.copy()
        mac.update(base.encode())
        # base64's alphabet is ALPHA DIGIT "+" "/" "=": three characters to encode
        signature = b64encode(mac.digest()).decode()
        signature = signature.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        return f'OAuth oauth_nonce="{nonce}", oauth_timestamp="{timestamp}{self._head}{signature}"'
