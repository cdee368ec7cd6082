"""The names of every Redis key the multi-machine mode uses, in Python and in Lua: the one place
they are spelled.

Every key starts with the prefix (default ``bulkrt:``). Keys about one account (its platform
user id, since the platform's budget is per user) carry the id in braces, a Redis Cluster hash
tag, so one account's keys share a slot: ``bulkrt:u:{1234}:lease``. The Lua scripts build the
per-account and per-job keys they discover while running (an account's jobs, a job's queues)
with the functions in `LUA_KEYS`, which every script starts with, so a name cannot drift
between the two languages.

>>> keys = KeySpace("bulkrt:")
>>> keys.lease("1234")
'bulkrt:u:{1234}:lease'
>>> keys.queue("spring", "1234")
'bulkrt:q:spring:1234'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENDPOINTS", "LUA_KEYS", "KeySpace"]

#: the endpoints that have a budget of their own, per account
ENDPOINTS = ("retweet", "undo")

#: Lua functions naming the keys, for scripts called with the prefix as ``ARGV[1]``; they mirror
#: the methods of `KeySpace` one for one
LUA_KEYS = """
local P = ARGV[1]
local function k_lease(u) return P .. 'u:{' .. u .. '}:lease' end
local function k_fence(u) return P .. 'u:{' .. u .. '}:fence' end
local function k_user_jobs(u) return P .. 'u:{' .. u .. '}:jobs' end
local function k_queue(j, u) return P .. 'q:' .. j .. ':' .. u end
local function k_items(j) return P .. 'items:' .. j end
local function k_job_users(j) return P .. 'users:' .. j end
local function k_job(j) return P .. 'job:' .. j end
local function k_results(j) return P .. 'results:' .. j end
local function k_journal(j) return P .. 'journal:' .. j end
local function k_worker(w) return P .. 'worker:' .. w end
local K_AVAIL = P .. 'avail'
local K_LEASED = P .. 'leased'
local K_QUIET = P .. 'quiet'
local K_WORKERS = P .. 'workers'
local K_JOBS = P .. 'jobs'
local K_JOB_SEQ = P .. 'job_seq'
local K_WAKE = P .. 'wake'
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Key names under one prefix."""

    prefix: str = "bulkrt:"

    def _user(self, user_id: str, what: str) -> str:
        return f"{self.prefix}u:{{{user_id}}}:{what}"

    # -- one account's keys ------------------------------------------------------------------
    def lease(self, user_id: str) -> str:
        """``"<worker>|<fence>"`` with a TTL: who sends for the account."""
        return self._user(user_id, "lease")

    def fence(self, user_id: str) -> str:
        """A counter incremented on every claim of the account's lease."""
        return self._user(user_id, "fence")

    def window_log(self, user_id: str, endpoint: str) -> str:
        """The sliding-window log (a sorted set) of the account's sends to one endpoint."""
        return self._user(user_id, f"sw:{endpoint}")

    def blocked(self, user_id: str, endpoint: str) -> str:
        """Until when the platform said the account may not send to one endpoint."""
        return self._user(user_id, f"blk:{endpoint}")

    def spent(self, user_id: str, endpoint: str) -> str:
        """Until the platform's reset, the lease (``worker|fence``) whose answer said the window
        was spent: every other holder waits for the reset; that one paces on its own."""
        return self._user(user_id, f"spent:{endpoint}")

    def credentials(self, user_id: str) -> str:
        """The account's OAuth 2.0 tokens and their version (a hash)."""
        return self._user(user_id, "cred")

    def refresh_lock(self, user_id: str) -> str:
        """Held while one worker refreshes the account's tokens."""
        return self._user(user_id, "refresh")

    def refresh_lost(self, user_id: str) -> str:
        """Set when a refresh was sent and its answer lost."""
        return self._user(user_id, "lost")

    def user_jobs(self, user_id: str) -> str:
        """The jobs with items queued for the account, scored by job sequence."""
        return self._user(user_id, "jobs")

    # -- one job's keys ----------------------------------------------------------------------
    def queue(self, job_id: str, user_id: str) -> str:
        """One account's queued item keys in one job, scored by serial (file order)."""
        return f"{self.prefix}q:{job_id}:{user_id}"

    def items(self, job_id: str) -> str:
        """A job's queued items: item key -> item JSON."""
        return f"{self.prefix}items:{job_id}"

    def job_users(self, job_id: str) -> str:
        """The accounts a job published items for (to delete their queues with the job)."""
        return f"{self.prefix}users:{job_id}"

    def job(self, job_id: str) -> str:
        """A job's description and counters (a hash)."""
        return f"{self.prefix}job:{job_id}"

    def results(self, job_id: str) -> str:
        """A job's finished items' ledger lines, waiting for the driver (a stream)."""
        return f"{self.prefix}results:{job_id}"

    def journal(self, job_id: str) -> str:
        """A job's journal lines, shared by its workers (a stream)."""
        return f"{self.prefix}journal:{job_id}"

    # -- shared keys -------------------------------------------------------------------------
    @property
    def available(self) -> str:
        """Accounts with queued items and no lease, scored by when they began to wait (ms)."""
        return f"{self.prefix}avail"

    @property
    def leased(self) -> str:
        """Leased accounts, scored by lease expiry (ms)."""
        return f"{self.prefix}leased"

    @property
    def quiet(self) -> str:
        """Account -> ms before which nothing may be sent for it (after a lease expired)."""
        return f"{self.prefix}quiet"

    def app_window_log(self, cap: str) -> str:
        """The sliding-window log (a sorted set) of an app-wide cap: every account's sends that
        the cap counts, whichever process sent them."""
        return f"{self.prefix}app:sw:{cap}"

    @property
    def workers(self) -> str:
        """Workers, scored by their last beat (ms)."""
        return f"{self.prefix}workers"

    def worker(self, worker: str) -> str:
        """One worker's host, pid, start and stats (a hash)."""
        return f"{self.prefix}worker:{worker}"

    @property
    def jobs(self) -> str:
        """Registered jobs, scored by job sequence."""
        return f"{self.prefix}jobs"

    @property
    def job_sequence(self) -> str:
        """The counter that numbers registered jobs."""
        return f"{self.prefix}job_seq"

    @property
    def wake(self) -> str:
        """The channel (publish/subscribe, not a key) on which a driver says it made accounts
        available: idle workers claim at once instead of at their next look."""
        return f"{self.prefix}wake"
