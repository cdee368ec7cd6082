"""One module per `bulkrt` subcommand; each defines `command`, a `click.Command` (see `bulkrt.cli`)."""
