"""The async shell: HTTP to the API, credentials and the accounts file, the dispatcher that
drives the core's scheduler, the runner from settings to exit code, and the progress display.

May import every wing except the commands, the report and the sandbox.
"""
