"""One module per `bulkrt` subcommand, each defining `command`, a `click.Command` (`bulkrt.cli`),
and what they share: options (`options`) and the rule for which files a command may write
(`outputs`). Commands may import every wing; nothing imports a command but `bulkrt.cli`.
"""
