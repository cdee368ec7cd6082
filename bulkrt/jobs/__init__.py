"""Job files: reading CSV or JSONL rows (maybe gzip) as raw rows (`job_files`), checked rows
(`rows.Row`, the one row shape) and items with their keys, and writing rows as job files
(`job_writer`: a campaign's cross product from `campaign`, a rollback's undo job).

May import the foundation (`bulkrt.errors`, `bulkrt.redaction`, `bulkrt.atomic`) and the core.
"""
