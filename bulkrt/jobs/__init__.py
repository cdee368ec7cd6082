"""Job files: reading CSV or JSONL rows (maybe gzip) into checked items, their keys and Tweet
ids, and writing job files (a campaign's cross product, a rollback's undo job).

May import the foundation (`bulkrt.errors`, `bulkrt.redaction`, `bulkrt.atomic`) and the core.
"""
