"""The items a run still has to send, as the scheduler holds them: tickets in per-account queues
(`WorkSource`, in memory as `AccountQueues`; a Redis-backed source can take its place), and the
steps and results the scheduler hands to the async shell."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from bulkrt.core.items import ErrorDetail, Item, Status, draft_class

__all__ = [
    "AccountQueues",
    "Dispatch",
    "Entry",
    "Fresh",
    "Done",
    "Idle",
    "ItemResult",
    "Refresh",
    "Step",
    "Ticket",
    "Wait",
    "WorkSource",
    "new_result",
    "new_ticket",
    "result_draft",
    "ticket_draft",
]


@dataclass(frozen=True, slots=True)
class Ticket:
    """An item on its way through the scheduler, with what it has spent so far."""

    #: position in the order items were added (file order); unique per scheduler
    serial: int
    item: Item
    #: HTTP requests sent for the item (the ledger's ``attempts``)
    sent: int = 0
    #: attempts counted against ``--max-attempts`` (429s and auth replays are not)
    tries: int = 0
    #: a retry must not go before this time
    not_before: float = 0.0
    #: an attempt of this run may have been applied (`bulkrt.core.attribution.Effect.POSSIBLE`)
    maybe_applied: bool = False


@dataclass(frozen=True, slots=True)
class ItemResult:
    """How an item ended: what the shell writes to the ledger."""

    item: Item
    status: Status
    retweeted: bool | None
    #: see `bulkrt.ledger.record.LedgerRecord.preexisting`
    preexisting: bool | None
    http: int | None
    error: ErrorDetail | None
    attempts: int
    #: ``now`` when the outcome was known
    finished_at: float
    #: when its last request was sent (None when none was)
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Send this ticket's request now, then report with ``on_response``."""

    ticket: Ticket


@dataclass(frozen=True, slots=True)
class Refresh:
    """Refresh this account's credentials once, then report with ``on_refreshed``."""

    account: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing may go before ``until``; call ``next`` then, or earlier when a request ends."""

    until: float


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing can go until a request in flight (or a refresh) ends."""


@dataclass(frozen=True, slots=True)
class Done:
    """Every item has a result."""


Step: TypeAlias = Dispatch | Refresh | Wait | Idle | Done


class WorkSource(Protocol):
    """Per-account queues of tickets in file order (in memory now; Redis-backed later)."""

    def put(self, ticket: Ticket) -> None:
        """Append a new ticket behind its account's others."""
        ...

    def put_back(self, ticket: Ticket) -> None:
        """Return a taken ticket ahead of every later ticket of its account."""
        ...

    def head(self, account: str) -> Ticket | None:
        """The account's next ticket, without taking it."""
        ...

    def take(self, account: str) -> Ticket:
        """Remove and return the account's next ticket."""
        ...

    def drain(self, account: str) -> list[Ticket]:
        """Remove and return all the account's tickets."""
        ...

    def accounts(self) -> Iterable[str]:
        """Accounts that have tickets."""
        ...

    def __len__(self) -> int: ...


#: a queued item that has not been taken yet: (serial, item), standing for ``Ticket(serial,
#: item)``; `AccountQueues` hands it out as that ticket (a tuple costs a fifth of a ticket)
Fresh: TypeAlias = tuple[int, Item]
#: what `AccountQueues` holds per account: one entry, or a deque of several, in serial order
Entry: TypeAlias = Ticket | Fresh


def _ticket(entry: Entry) -> Ticket:
    if type(entry) is tuple:
        return new_ticket(entry[0], entry[1], 0, 0, 0.0, False)
    assert isinstance(entry, Ticket)
    return entry


def _serial(entry: Entry) -> int:
    return entry[0] if type(entry) is tuple else entry.serial  # type: ignore[union-attr]


class AccountQueues:
    """The in-memory :class:`WorkSource`: per account, its one entry, or a deque of several (most
    accounts of a large job hold one item at a time, and a deque costs half a kilobyte). An entry
    is a `Ticket`, or for an item never taken yet the pair ``(serial, item)`` (`Fresh`, see
    `add`), handed out as ``Ticket(serial, item)``.

    >>> from bulkrt.core.items import Action
    >>> queues = AccountQueues()
    >>> for n in (1, 2):
    ...     queues.put(Ticket(n, Item(f"k{n}", "c", "acme", str(n), Action.RETWEET, "j.csv", n)))
    >>> first = queues.take("acme"); queues.put_back(first); queues.head("acme").serial
    1
    >>> queues.add(3, Item("k3", "c", "acme", "3", Action.RETWEET, "j.csv", 3))
    >>> [(t.serial, t.sent) for t in queues.drain("acme")], len(queues)
    ([(1, 0), (2, 0), (3, 0)], 0)
    """

    def __init__(self) -> None:
        self._queues: dict[str, Entry | deque[Entry]] = {}
        self._size = 0

    def add(self, serial: int, item: Item, account: str | None = None) -> None:
        """`put` of ``Ticket(serial, item)``, queued as the pair it stands for; ``account`` is
        the key to file it under (by default ``item.account``: an equal string)."""
        self._insert(account or item.account, (serial, item))

    def put(self, ticket: Ticket) -> None:
        self._insert(ticket.item.account, ticket)

    def _insert(self, account: str, entry: Entry) -> None:
        queue = self._queues.get(account)
        if queue is None:
            self._queues[account] = entry
        elif isinstance(queue, deque):
            queue.append(entry)
        else:
            self._queues[account] = deque((queue, entry))
        self._size += 1

    def put_back(self, ticket: Ticket) -> None:
        account = ticket.item.account
        queue = self._queues.get(account)
        if queue is None:
            self._queues[account] = ticket
        else:
            if not isinstance(queue, deque):
                queue = self._queues[account] = deque((queue,))
            serial = ticket.serial
            index = next((i for i, t in enumerate(queue) if _serial(t) > serial), len(queue))
            queue.insert(index, ticket)
        self._size += 1

    def head(self, account: str) -> Ticket | None:
        queue = self._queues.get(account)
        if queue is None:
            return None
        return _ticket(queue[0] if isinstance(queue, deque) else queue)

    def take(self, account: str) -> Ticket:
        self._size -= 1
        queue = self._queues[account]
        if not isinstance(queue, deque):
            del self._queues[account]
            return _ticket(queue)
        entry = queue.popleft()
        if len(queue) == 1:  # back to one entry: no deque kept for it
            self._queues[account] = queue[0]
        return _ticket(entry)

    def drain(self, account: str) -> list[Ticket]:
        queue = self._queues.pop(account, None)
        if queue is None:
            return []
        entries = list(queue) if isinstance(queue, deque) else [queue]
        self._size -= len(entries)
        return [_ticket(entry) for entry in entries]

    def accounts(self) -> Iterator[str]:
        return iter(self._queues)

    def __len__(self) -> int:
        return self._size


# -- building records in the hot path: what the constructors make, at a quarter of the cost ----

_TicketDraft = draft_class(Ticket)
_ResultDraft = draft_class(ItemResult)
#: an empty draft of a `Ticket`, for a loop that builds tickets inline (see `new_ticket`)
ticket_draft: Any = _TicketDraft
#: an empty draft of an `ItemResult`, for a loop that builds results inline (see `new_result`)
result_draft: Any = _ResultDraft


def new_ticket(
    serial: int, item: Item, sent: int, tries: int, not_before: float, maybe_applied: bool
) -> Ticket:
    """``Ticket(serial, item, sent, tries, not_before, maybe_applied)``, built faster
    (`bulkrt.core.items.draft_class`).

    >>> from bulkrt.core.items import Action
    >>> it = Item("k", "c", "acme", "20", Action.RETWEET, "job.csv", 2)
    >>> new_ticket(3, it, 1, 0, 0.0, False) == Ticket(3, it, 1)
    True
    """
    draft = _TicketDraft()
    draft.serial = serial
    draft.item = item
    draft.sent = sent
    draft.tries = tries
    draft.not_before = not_before
    draft.maybe_applied = maybe_applied
    draft.__class__ = Ticket
    ticket: Ticket = draft
    return ticket


def new_result(
    item: Item,
    status: Status,
    retweeted: bool | None,
    preexisting: bool | None,
    http: int | None,
    error: ErrorDetail | None,
    attempts: int,
    finished_at: float,
    sent_at: float | None,
) -> ItemResult:
    """``ItemResult(...)`` with every field given in order, built faster (see `new_ticket`)."""
    draft = _ResultDraft()
    draft.item = item
    draft.status = status
    draft.retweeted = retweeted
    draft.preexisting = preexisting
    draft.http = http
    draft.error = error
    draft.attempts = attempts
    draft.finished_at = finished_at
    draft.sent_at = sent_at
    draft.__class__ = ItemResult
    result: ItemResult = draft
    return result
