"""One module per `bulkrt` subcommand, each defining `command`, a `click.Command` (`bulkrt.cli`),
and what they share: options (`options`) and the rule for which files a command may write
(`outputs`). Commands may import every wing and the foundation. Nothing imports a command but
`bulkrt.cli`, by name when it runs: a command imports of this wing only `options`, `outputs` and
(the demo alone) the sandbox command's accounts-file writer.
"""
