"""The async shell: HTTP to the API, credentials and the accounts file, the dispatcher that
drives the core's scheduler through one `Sender` per account (`sender.py`, the seam a test or a
simulation plugs into), the runner from settings to exit code, and the progress display (which
reads the dispatcher's immutable `RunStats`, not the dispatcher).

May import every wing except the commands, the report and the sandbox.
"""
