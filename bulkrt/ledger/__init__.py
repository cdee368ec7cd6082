"""The ledger and its sidecar: the record of one line, reading and appending ledgers, the sent
journal (``<ledger>.sent``), the counts `status` shows, and the undo items of a rollback.

May import the foundation, the core and the jobs wing.
"""
