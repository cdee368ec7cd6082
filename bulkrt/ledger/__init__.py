"""The ledger and its sidecar: the record of one line, reading and appending ledgers, the sent
journal (``<ledger>.sent``), what a resume needs from them (`bulkrt.ledger.resume`: finished
keys, superseded items, the identity check), the counts `status` shows, and the undo items of a
rollback.

May import the foundation, the core and the jobs wing.
"""
