"""``python -m rosettazoo.conversion [convert|info] ...``: see ``cli.py``."""

from .cli import main

raise SystemExit(main(prog="python -m rosettazoo.conversion"))
