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


class AccountQueues:
    """The in-memory :class:`WorkSource`: per account, its one ticket, or a deque of several (most
    accounts of a large job hold one item at a time, and a deque costs half a kilobyte).

    >>> from bulkrt.core.items import Action
    >>> queues = AccountQueues()
    >>> for n in (1, 2):
    ...     queues.put(Ticket(n, Item(f"k{n}", "c", "acme", str(n), Action.RETWEET, "j.csv", n)))
    >>> first = queues.take("acme"); queues.put_back(first); queues.head("acme").serial
    1
    """

    def __init__(self) -> None:
        self._queues: dict[str, Ticket | deque[Ticket]] = {}
        self._size = 0

    def put(self, ticket: Ticket) -> None:
        account = ticket.item.account
        queue = self._queues.get(account)
        if queue is None:
            self._queues[account] = ticket
        elif isinstance(queue, Ticket):
            self._queues[account] = deque((queue, ticket))
        else:
            queue.append(ticket)
        self._size += 1

    def put_back(self, ticket: Ticket) -> None:
        account = ticket.item.account
        queue = self._queues.get(account)
        if queue is None:
            self._queues[account] = ticket
        else:
            if isinstance(queue, Ticket):
                queue = self._queues[account] = deque((queue,))
            index = next((i for i, t in enumerate(queue) if t.serial > ticket.serial), len(queue))
            queue.insert(index, ticket)
        self._size += 1

    def head(self, account: str) -> Ticket | None:
        queue = self._queues.get(account)
        if queue is None or isinstance(queue, Ticket):
            return queue
        return queue[0]

    def take(self, account: str) -> Ticket:
        self._size -= 1
        queue = self._queues[account]
        if isinstance(queue, Ticket):
            del self._queues[account]
            return queue
        ticket = queue.popleft()
        if len(queue) == 1:  # back to one ticket: no deque kept for it
            self._queues[account] = queue[0]
        return ticket

    def drain(self, account: str) -> list[Ticket]:
        queue = self._queues.pop(account, None)
        tickets = [] if queue is None else [queue] if isinstance(queue, Ticket) else list(queue)
        self._size -= len(tickets)
        return tickets

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
