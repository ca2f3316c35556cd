"""One module per `pyci` subcommand; each exposes `register(subparsers)` (see runner.cli)."""
