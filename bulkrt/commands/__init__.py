"""One module per `bulkrt` subcommand, each defining `command`, a `click.Command` (`bulkrt.cli`)."""
