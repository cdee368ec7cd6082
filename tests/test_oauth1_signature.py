"""bulkrt's OAuth 1.0a signer against the reference: its Authorization header is oauthlib's, byte
for byte, over a seeded randomized table of credentials, ids, nonces, timestamps, hosts, ports and
paths; its percent-encoding and base string URI follow RFC 5849; the sandbox's verifier (oauthlib)
accepts what it signs and refuses a signature made for another request.

``BULKRT_SIGNER_CASES`` (default 3000) and ``BULKRT_SIGNER_SEED`` (default 0) set the table's size
and seed, to run many more cases by hand.
"""

from __future__ import annotations

import json
import os
import random
import re
import string
import time
from dataclasses import dataclass, replace

import pytest
from oauthlib.oauth1 import Client as OAuth1Client

from bulkrt.sandbox.oauth1 import OAuth1Token, OAuth1Verifier
from bulkrt.shell.accounts import OAuth1
from bulkrt.shell.credentials import OAuth1Signer
from bulkrt.shell.oauth1_signature import OAuth1Key, base_string_uri, percent_encode

CASES = int(os.environ.get("BULKRT_SIGNER_CASES", "3000"))
SEED = int(os.environ.get("BULKRT_SIGNER_SEED", "0"))

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
#: every printable ASCII character that is not unreserved, and a space
_RESERVED = "".join(c for c in string.printable if c not in _UNRESERVED and c.isprintable()) + " "
_NON_ASCII = "éüßøñ中文字😀\u00a0\u2028Ω"
_ANYTHING = _UNRESERVED * 2 + _RESERVED + _NON_ASCII
#: path segments as a client may send them: percent-encoded bytes, sub-delimiters, a raw space
_SEGMENTS = ["v1", "proxy%20x", "a%2Fb", "%7Euser", "caf%C3%A9", "x%25y", "~a-b_c.d",
             "!$&'()*+,=:@", "semi;colon", "with space", "%E4%B8%AD", "UPPER%3a"]  # fmt: skip
_HOSTS = ["api.x.com", "API.X.COM", "Api.Twitter.com", "localhost", "127.0.0.1", "[::1]",
          "[2001:DB8::0001]", "[::ffff:127.0.0.1]", "10.0.0.255"]  # fmt: skip


def _text(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    return "".join(rng.choices(alphabet, k=rng.randint(low, high)))


def _digits(rng: random.Random) -> str:
    return str(rng.randint(1, 2**63 - 1))


@dataclass(frozen=True, slots=True)
class Case:
    """One request to sign: credentials, method, URL, nonce and timestamp."""

    consumer_key: str
    consumer_secret: str
    token: str
    token_secret: str
    method: str
    url: str
    nonce: str
    timestamp: int


def random_case(rng: random.Random) -> Case:
    """A request as bulkrt sends them (a retweet POST or an undo DELETE), with credentials and
    nonces of real shapes or full of reserved and non-ASCII characters, on any host and port."""
    user_id, tweet_id = _digits(rng), _digits(rng)
    plain = rng.random() < 0.3
    alphabet = _UNRESERVED if plain else _ANYTHING
    token = f"{user_id}-{_text(rng, alphabet, 1, 40)}" if rng.random() < 0.5 else None
    scheme = rng.choice(["http", "https", "HTTP", "Https"])
    host = rng.choice(_HOSTS)
    if rng.random() < 0.3:
        host = _text(rng, string.ascii_letters + string.digits, 1, 12) + ".Example.ORG"
    port = rng.choice(["", ":80", ":443", f":{rng.randint(1, 65535)}", ":8787"])
    prefix = "".join("/" + rng.choice(_SEGMENTS) for _ in range(rng.choice([0, 0, 1, 2])))
    method = rng.choice(["POST", "DELETE"])
    path = f"{prefix}/2/users/{user_id}/retweets"
    if method == "DELETE":
        path += f"/{tweet_id}"
    nonce = rng.choice(
        [
            os.urandom(16).hex(),
            _digits(rng) + str(rng.randint(10**9, 2 * 10**9)),  # oauthlib's own shape
            _text(rng, _ANYTHING, 1, 40),
        ]
    )
    return Case(
        consumer_key=_text(rng, alphabet, 1, 30),
        consumer_secret=_text(rng, alphabet, 0, 50),
        token=token or _text(rng, alphabet, 1, 50),
        token_secret=_text(rng, alphabet, 0, 50),
        method=method,
        url=f"{scheme}://{host}{port}{path}",
        nonce=nonce,
        timestamp=rng.choice([rng.randint(0, 2**34), int(time.time()) + rng.randint(-999, 999)]),
    )


def oauthlib_header(case: Case) -> str:
    """What oauthlib signs for the request (how bulkrt signed before: URL and method, no body)."""
    client = OAuth1Client(
        case.consumer_key,
        case.consumer_secret,
        case.token,
        case.token_secret,
        nonce=case.nonce,
        timestamp=str(case.timestamp),
    )
    _, headers, _ = client.sign(case.url, case.method)  # type: ignore[arg-type]  # stubs: a Literal
    return str(headers["Authorization"])


def bulkrt_header(case: Case) -> str:
    key = OAuth1Key(case.consumer_key, case.consumer_secret, case.token, case.token_secret)
    return key.authorization(case.method, case.url, case.nonce, case.timestamp)


def header_parameters(header: str) -> dict[str, str]:
    """The ``name="value"`` pairs of an ``OAuth ...`` header."""
    assert header.startswith("OAuth ")
    pairs = re.findall(r'([a-z_]+)="([^"]*)"', header)
    assert ", ".join(f'{k}="{v}"' for k, v in pairs) == header.removeprefix("OAuth ")
    return dict(pairs)


class TestEqualToOAuthlib:
    def test_the_header_is_oauthlibs_byte_for_byte(self) -> None:
        """Over the seeded table, the whole Authorization header (every parameter, the signature,
        their order) is the one oauthlib makes for the same request, nonce and timestamp."""
        rng = random.Random(SEED)
        cases = [random_case(rng) for _ in range(CASES)]
        wrong = [
            (n, case, ours, theirs)
            for n, case in enumerate(cases)
            if (ours := bulkrt_header(case)) != (theirs := oauthlib_header(case))
        ]
        assert wrong == [], f"{len(wrong)} of {CASES} differ (seed {SEED}); first: {wrong[0]}"
        # the table holds what it promises, so the equality above covers it
        urls = [case.url for case in cases]
        if CASES >= 1000:
            assert any(re.search(r"//[^/]*[A-Z]", url) for url in urls)
            assert any(url.lower().startswith("https://") and ":443/" in url for url in urls)
            assert any(url.lower().startswith("http://") and ":80/" in url for url in urls)
            assert any(url.lower().startswith("https://") and ":80/" in url for url in urls)
            assert any("%" in url.split("/2/users/")[0].split("//")[1] for url in urls)
            assert any(" " in url for url in urls)
            assert any(not case.consumer_secret.isascii() for case in cases)
            assert any(set(case.token_secret) & set("&=%+ ") for case in cases)
            assert any(set(case.nonce) & set(_RESERVED + _NON_ASCII) for case in cases)
            assert {case.method for case in cases} == {"POST", "DELETE"}

    def test_the_parameters_are_the_protocols_own(self) -> None:
        """A header carries exactly the six protocol parameters and the signature, the nonce and
        timestamp as given, the credentials percent-encoded."""
        case = Case("c k", "s", "12-t/k", "ts", "POST", "https://api.x.com/2/users/12/retweets",
                    "nonce", 1700000000)  # fmt: skip
        params = header_parameters(bulkrt_header(case))
        signature = params.pop("oauth_signature")
        assert params == {
            "oauth_nonce": "nonce",
            "oauth_timestamp": "1700000000",
            "oauth_version": "1.0",
            "oauth_signature_method": "HMAC-SHA1",
            "oauth_consumer_key": "c%20k",
            "oauth_token": "12-t%2Fk",
        }
        assert re.fullmatch(r"[A-Za-z0-9%]{28,36}", signature) and signature.endswith("%3D")

    def test_a_signature_depends_on_every_part_of_the_request(self) -> None:
        """Changing the method, the user or Tweet id, the host, the port, the nonce, the timestamp,
        the consumer key, the token or a secret changes the signature (oauthlib agrees on each)."""
        base = Case("ck", "cs", "1-tok", "ts", "DELETE", "https://api.x.com/2/users/1/retweets/5",
                    "n", 1)  # fmt: skip
        url = base.url
        variants = [
            base,
            replace(base, method="POST"),
            replace(base, url=url.replace("/users/1/", "/users/2/")),
            replace(base, url=url.replace("/5", "/6")),
            replace(base, url=url.replace("api.x.com", "api.twitter.com")),
            replace(base, url=url.replace("api.x.com", "api.x.com:8443")),
            replace(base, nonce="m"),
            replace(base, timestamp=2),
            replace(base, consumer_key="ck2"),
            replace(base, consumer_secret="cs2"),
            replace(base, token="1-tok2"),
            replace(base, token_secret="ts2"),
        ]
        signatures = [header_parameters(bulkrt_header(v))["oauth_signature"] for v in variants]
        assert len(set(signatures)) == len(variants)
        assert [bulkrt_header(v) for v in variants] == [oauthlib_header(v) for v in variants]


class TestRfc5849:
    def test_percent_encoding_leaves_only_the_unreserved_characters(self) -> None:
        """Every character is itself when ALPHA, DIGIT, "-", ".", "_" or "~", else each byte of its
        UTF-8 form as "%" and two upper-case hex digits."""
        characters = [chr(c) for c in range(0x2FF)] + list(_NON_ASCII) + ["\U0010fffd"]
        for c in characters:
            expected = c if c in _UNRESERVED else "".join(f"%{b:02X}" for b in c.encode())
            assert percent_encode(c) == expected, repr(c)
        assert percent_encode("".join(characters)) == "".join(map(percent_encode, characters))

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("HTTP://EXAMPLE.COM:80/r%20v/X?id=123", "http://example.com/r%20v/X"),
            ("https://www.example.net:8080/?q=1", "https://www.example.net:8080/"),
            ("https://API.X.com:443/2/users/1/retweets", "https://api.x.com/2/users/1/retweets"),
            ("http://api.x.com:443/2", "http://api.x.com:443/2"),
            ("https://api.x.com:80/2", "https://api.x.com:80/2"),
            ("http://127.0.0.1:8787/2/Users", "http://127.0.0.1:8787/2/Users"),
            ("http://[2001:DB8::0001]:80/a", "http://[2001:db8::1]/a"),
            ("https://api.x.com", "https://api.x.com/"),
            ("https://api.x.com/a b/%7e#top", "https://api.x.com/a%20b/%7e"),
        ],
    )
    def test_the_base_string_uri_is_normalised(self, url: str, expected: str) -> None:
        """Scheme and host in lower case, the scheme's default port dropped and any other kept, the
        path as sent (a space as %20), no query or fragment: RFC 5849 3.4.1.2."""
        assert base_string_uri(url) == expected

    @pytest.mark.parametrize(
        "url",
        [
            "https://api.x.com/2/users/1/retweets?x=1",
            "https://api.x.com/2/users/1/retweets#f",
            "api.x.com/2/users/1/retweets",
            "https:///2/users/1/retweets",
        ],
    )
    def test_a_url_it_cannot_sign_is_refused(self, url: str) -> None:
        """A URL with a query (whose parameters would have to be signed) or a fragment, or without
        a scheme or host, raises instead of getting a signature the server would refuse."""
        key = OAuth1Key("ck", "cs", "1-tok", "ts")
        with pytest.raises(ValueError, match="query or fragment|absolute URL|no host"):
            key.authorization("POST", url, "n", 1)

    @pytest.mark.parametrize(("consumer_key", "token"), [("", "1-tok"), ("ck", "")])
    def test_an_empty_consumer_key_or_token_is_refused(self, consumer_key: str, token: str) -> None:
        """Key material without a consumer key or an access token raises (oauthlib would silently
        leave an empty token out of the header)."""
        with pytest.raises(ValueError, match="consumer key and an access token"):
            OAuth1Key(consumer_key, "cs", token, "ts")


class TestTheAuthorizer:
    async def test_the_sandbox_verifier_accepts_its_signatures(self) -> None:
        """The sandbox's oauthlib verifier accepts the retweet (with its JSON body) and the undo
        signed by the accounts' authorizer with credentials full of reserved and non-ASCII
        characters, refuses a replay, and refuses a signature made for another Tweet."""
        rng = random.Random(SEED)
        consumers: dict[str, str] = {}
        tokens: dict[str, OAuth1Token] = {}
        signers = []
        for n in range(20):
            key, secret = _text(rng, _ANYTHING, 1, 20), _text(rng, _ANYTHING, 1, 40)
            token, token_secret = (
                f"{n}-{_text(rng, _ANYTHING, 1, 20)}",
                _text(rng, _ANYTHING, 1, 40),
            )
            consumers[key] = secret
            tokens[token] = OAuth1Token(str(n), key, token_secret)
            signers.append(OAuth1Signer(OAuth1(key, secret, token, token_secret)))
        verifier = OAuth1Verifier(consumers, tokens, skew=300)
        body = json.dumps({"tweet_id": "77"}).encode()
        base = "https://API.x.com"
        for n, signer in enumerate(signers):
            post = f"{base}/2/users/{n}/retweets"
            delete = f"{base}/2/users/{n}/retweets/77"
            headers = {"Authorization": await signer.authorization("POST", post)}
            headers["Content-Type"] = "application/json"
            now = time.time()
            assert verifier.verify("POST", post, headers, body, now=now).user_id == str(n)
            assert (
                verifier.verify("POST", post, headers, body, now=now).reason == "nonce already used"
            )
            headers = {"Authorization": await signer.authorization("DELETE", delete)}
            assert verifier.verify("DELETE", delete, headers, b"", now=now).user_id == str(n)
            headers = {"Authorization": await signer.authorization("DELETE", delete)}
            other = delete.replace("/77", "/78")
            assert verifier.verify("DELETE", other, headers, b"", now=now).reason == (
                "signature mismatch"
            )

    async def test_every_attempt_gets_a_fresh_nonce_and_the_current_second(self) -> None:
        """Two signatures of one request differ in their nonce (32 hex digits, never repeated) and
        carry the wall clock's second as their timestamp."""
        signer = OAuth1Signer(OAuth1("ck", "cs", "1-tok", "ts"))
        url = "https://api.x.com/2/users/1/retweets"
        before = int(time.time())
        params = [header_parameters(await signer.authorization("POST", url)) for _ in range(50)]
        after = int(time.time())
        nonces = [p["oauth_nonce"] for p in params]
        assert len(set(nonces)) == 50 and all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)
        assert all(before <= int(p["oauth_timestamp"]) <= after for p in params)

    def test_no_secret_in_its_repr(self) -> None:
        """The authorizer's repr names the consumer key and none of the three secrets."""
        shown = repr(OAuth1Signer(OAuth1("the-consumer", "sec-one", "tok-two", "sec-three")))
        assert "the-consumer" in shown
        assert not any(s in shown for s in ("sec-one", "tok-two", "sec-three"))
