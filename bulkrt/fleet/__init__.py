"""The multi-machine mode (``--redis URL``): runs and workers on several processes and machines
share one Redis for the job's items, every account's rate-limit budget and credentials, and the
results that the driving ``bulkrt run`` writes to the operator's ledger.

Lives here: the Redis connection, the shared budget (a sliding-window log per account and
endpoint, in one Lua script), account leases with fencing, the published jobs and their results,
and the worker that runs leased accounts through the same scheduler and dispatcher as the
embedded mode. May import the foundation, `bulkrt.core`, `bulkrt.jobs`, `bulkrt.ledger` and
`bulkrt.shell`; only `bulkrt.commands` imports it. Without ``--redis`` nothing here is loaded.
"""
