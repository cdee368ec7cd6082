"""Job files: reading CSV or JSONL rows (maybe gzip) into checked items, their keys and Tweet
ids, and writing job files (a campaign's cross product, a rollback's undo job).

May import the core and, of the foundation, `bulkrt.errors`, `bulkrt.redaction` and
`bulkrt.atomic` (not the logs or the exit codes).
"""
