"""The whole run in virtual time: the real scheduler, dispatcher, ledger writer and sent journal
driven against the sandbox's pure state on a virtual clock, deterministically from a seed.

It serves the dry run's duration estimate, the invariant tests and the scale benchmark. Nothing
here opens a socket, starts a thread or reads the wall clock while a simulation runs.

May import the foundation, the core, the jobs, the ledger and the shell; of the sandbox only its
pure state modules (``bulkrt.sandbox.state``, ``config``, ``limits``, ``faults``, ``clock``,
``problems``, ``world``, ``windows``, ``auth`` and its OAuth verifiers), never its aiohttp server
or app. The runtime imports it only for ``bulkrt run --dry-run``.
"""
