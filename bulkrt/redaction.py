"""Finding and masking known secret values in text, in time linear in the text, whatever the
number of secrets and whatever prefixes they share (OAuth 1.0a access tokens begin with the user
id, and ids made near each other share their leading digits).

The secrets are kept in a set, and their first `MIN_LENGTH` characters are indexed with the
lengths of the secrets that start so (longest first). A text is scanned once: at each position the
window of `MIN_LENGTH` characters is looked up, and where it starts a secret, one set lookup per
length tells which secret is there. The cost per position depends on how many different lengths
the secrets have, never on how many share a prefix (a bucket of the secrets themselves, searched
one by one, made 100,000 prefix-sharing tokens quadratic). Learning a secret costs one insertion,
so tokens issued during a run are added as they appear. Values shorter than `MIN_LENGTH` are not
treated as secrets: they would mask ordinary words.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "MASK",
    "MIN_LENGTH",
    "SECRETS",
    "SHOWN_MAX",
    "Redactor",
    "mask_secrets",
    "masked_command",
    "masked_url",
    "shown",
]

MASK = "[redacted]"
#: the shortest value treated as a secret
MIN_LENGTH = 8
#: how many masked texts a `Redactor` remembers (campaigns and accounts recur on every line),
#: and the longest it remembers (a long text rarely recurs, and would be held until forgotten)
_SEEN = 4096
_SEEN_LONGEST = 256
#: the most windows a text's quick check steps over (see `Redactor._absent`), and the most
#: secrets it indexes for that (eight windows of each: a fleet's hundreds of thousands of
#: tokens go without it rather than hold millions of windows)
_STRIDE = 8
_STRIDE_SECRETS = 20_000
#: the longest input value an error message quotes; a longer one could be a secret (an accounts
#: file passed where a job or Tweet list is expected), so only its length is given
SHOWN_MAX = 20


def shown(value: str) -> str:
    """``value`` as an input error may show it: quoted when short, else only its length.

    >>> shown("abc"), shown("1036518367961303124-TVXpxJ9uvdhjt00tjfI2bebuROrNCH")
    ("'abc'", 'a 50-character value (not shown: it could hold a secret)')
    """
    if len(value) <= SHOWN_MAX:
        return repr(value)
    return f"a {len(value)}-character value (not shown: it could hold a secret)"


class Redactor:
    """Knows a set of secrets and masks them wherever they appear.

    >>> r = Redactor(["tok-0123456789"])
    >>> r.mask('token "tok-0123456789" refused'), r.mask("nothing here")
    ('token "[redacted]" refused', 'nothing here')
    """

    __slots__ = ("_grams", "_lengths", "_secrets", "_seen", "_shortest", "_stride")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        #: first MIN_LENGTH characters -> the lengths of the secrets that start so, longest first
        self._lengths: dict[str, tuple[int, ...]] = {}
        #: the length of the shortest secret: shorter text holds none
        self._shortest = 0
        #: every secret's windows of MIN_LENGTH characters at its first ``_stride`` offsets, for
        #: the quick check (`_absent`); a stride of 1: no quick check (it only ever shrinks)
        self._grams: set[str] = set()
        self._stride = _STRIDE
        #: recent answers for text that recurs (a campaign, an account); a new one after `add`
        self._seen: dict[str, str] = {}
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        """Learn more secrets (``None``, empty and short values are ignored).

        Safe against `mask` on another thread (tokens read from the accounts file are learned on
        a worker thread): the remembered answers are replaced last, so an answer scanned without
        a secret learned here goes to the memory replaced, never to the new one."""
        learned: list[str] = []
        for secret in secrets:
            if secret and len(secret) >= MIN_LENGTH and secret not in self._secrets:
                # the set first: whoever finds the length in the index finds the secret too
                self._secrets.add(secret)
                head = secret[:MIN_LENGTH]
                lengths = self._lengths.get(head, ())
                if len(secret) not in lengths:
                    self._lengths[head] = tuple(sorted((*lengths, len(secret)), reverse=True))
                self._shortest = min(self._shortest or len(secret), len(secret))
                learned.append(secret)
        if learned:
            self._index(learned)
            self._seen = {}

    def _index(self, learned: list[str]) -> None:
        """Index the windows of secrets just learned for the quick check, with the stride the
        shortest secret allows (a stride only shrinks: windows indexed at more offsets of the
        earlier secrets do no harm)."""
        stride = min(self._stride, self._shortest - MIN_LENGTH + 1)
        if stride <= 1 or len(self._secrets) > _STRIDE_SECRETS:
            # no quick check from now on: the stride goes first, then the windows (`_absent`
            # reads them in the other order, so it never pairs a stride with too few windows)
            self._stride = 1
            self._grams = set()
            return
        grams = self._grams
        for secret in learned:
            grams.update(secret[d : d + MIN_LENGTH] for d in range(stride))
        self._stride = stride

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def _at(self, text: str, i: int) -> int:
        """The length of the longest secret at ``text[i:]``, or 0."""
        lengths = self._lengths.get(text[i : i + MIN_LENGTH])
        if lengths is not None:
            room = len(text) - i
            for n in lengths:
                if n <= room and text[i : i + n] in self._secrets:
                    return n
        return 0

    def mask(self, text: str) -> str:
        """``text`` with every known secret replaced by `MASK` (leftmost first, longest wins)."""
        if len(text) < self._shortest or not self._shortest:
            return text
        if len(text) > _SEEN_LONGEST:
            return self._scan(text)
        seen = self._seen  # taken before the scan: an `add` meanwhile replaces it
        answer = seen.get(text)
        if answer is None:
            answer = self._scan(text)
            if len(seen) >= _SEEN:
                seen.clear()
            seen[text] = answer
        return answer

    def _absent(self, text: str) -> bool:
        """A quick proof that ``text`` holds no secret (False: it may hold one).

        A secret at ``text[i:]`` is at least ``_shortest`` characters long, so among the
        ``_stride`` positions from ``i`` (``_stride <= _shortest - MIN_LENGTH + 1``) one is a
        multiple of the stride, and the window of MIN_LENGTH characters there lies inside the
        secret at one of its first ``_stride`` offsets: an indexed window. Looking at the
        windows at multiples of the stride alone finds it."""
        grams = self._grams  # before the stride (see `_index`)
        stride = self._stride
        if stride <= 1:
            return False
        for i in range(0, len(text) - MIN_LENGTH + 1, stride):
            if text[i : i + MIN_LENGTH] in grams:
                return False
        return True

    def _scan(self, text: str) -> str:
        if self._absent(text):
            return text
        # Most text holds no secret: one set test per position proves it before the scan (the
        # windows made one at a time: a list of them costs 66 bytes per character of the text).
        heads = (text[i : i + MIN_LENGTH] for i in range(len(text) - MIN_LENGTH + 1))
        if self._lengths.keys().isdisjoint(heads):
            return text
        out: list[str] = []
        i = done = 0
        while i <= len(text) - MIN_LENGTH:
            n = self._at(text, i)
            if n == 0:
                i += 1
                continue
            out += [text[done:i], MASK]
            i = done = i + n
        if not out:
            return text
        out.append(text[done:])
        return "".join(out)


#: the secrets this process has loaded (credentials, tokens issued during a run): the logs mask
#: them in every line (`bulkrt.logs`), and messages printed outside the logs through `mask_secrets`
SECRETS = Redactor()


def mask_secrets(text: str) -> str:
    """``text`` with every secret this process has loaded masked (for messages printed outside
    the logs, such as an exception's)."""
    return SECRETS.mask(text)


#: what stands for a URL's credentials when it is shown
URL_MASK = "***"


def masked_url(url: str) -> str:
    """``url`` as a message may show it: any password masked, and a lone user part too (``redis://
    s3cret@host`` is a password given without its colon more often than a user name).

    >>> masked_url("rediss://bulkrt:s3cret@redis.example:6380/0")
    'rediss://bulkrt:***@redis.example:6380/0'
    >>> masked_url("redis://:s3cret@127.0.0.1:6379"), masked_url("redis://s3cret@h")
    ('redis://:***@127.0.0.1:6379', 'redis://***@h')
    >>> masked_url("redis://127.0.0.1"), masked_url("http//:pw@x")
    ('redis://127.0.0.1', 'http//:***@x')
    """
    scheme, sep, rest = url.partition("//")
    if not sep:
        return url
    userinfo, at, host = rest.partition("@")
    if not at or "/" in userinfo:
        return url
    user, colon, _ = userinfo.partition(":")
    shown_user = f"{user}:{URL_MASK}" if colon else URL_MASK
    return f"{scheme}//{shown_user}@{host}"


def masked_command(argv: list[str]) -> list[str]:
    """A command line as a message may show it: every URL's credentials masked (`masked_url`).

    >>> masked_command(["bulkrt", "run", "--redis", "redis://:pw@h:6379/0"])
    ['bulkrt', 'run', '--redis', 'redis://:***@h:6379/0']
    >>> masked_command(["bulkrt", "--redis=redis://:pw@h"])
    ['bulkrt', '--redis=redis://:***@h']
    """
    return [masked_url(arg) if "@" in arg and "//" in arg else arg for arg in argv]
