"""The process exit codes operators and scripts rely on (README "Exit codes")."""

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """What a `bulkrt` process tells its caller when it ends."""

    #: every item of the job is ``ok`` (or the command did what it was asked)
    OK = 0
    #: the run finished, but some item is ``rejected`` or ``error``
    ITEMS_FAILED = 1
    #: bad usage or bad input: nothing was sent and the ledger is untouched
    BAD_INPUT = 2
    #: the first answers proved the API base wrong (nothing answers there, or not the API):
    #: the run stopped early; answered items are ``error`` and the next run retries them
    MISCONFIGURED = 3
    #: the multi-machine mode's Redis could not be reached (or refused the credentials) when
    #: the command started: nothing was published or sent (EX_UNAVAILABLE)
    REDIS_UNAVAILABLE = 69
    #: the ledger or its journal could not be written (a full disk, an I/O error): nothing more
    #: was sent; the same command resumes once the cause is fixed (EX_IOERR)
    STORAGE_FAILED = 74
    #: stopped cleanly after SIGINT
    INTERRUPTED = 130
    #: stopped cleanly after SIGTERM
    TERMINATED = 143
