"""The ground floor every package builds on: settings, metrics, serving, HTTP helpers, ports, the broker.

Nothing here imports a service package (db_utils, data_parsing, inference, ...) or the top of
`movierec` (the CLI, the supervisor); the import-linter contracts in `.importlinter` check it.
"""
