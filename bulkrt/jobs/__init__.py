"""Job files: reading CSV or JSONL rows (maybe gzip) as raw rows (`job_files`), checked rows
(`rows.Row`, the one row shape) and items with their keys, and writing rows as job files
(`job_writer`: a campaign's cross product from `campaign`, a rollback's undo job).

May import the core and, of the foundation, `bulkrt.errors`, `bulkrt.redaction` and
`bulkrt.atomic` (not the logs or the exit codes).
"""
