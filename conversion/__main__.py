"""``python -m rosettazoo.conversion SRC DST``: see ``cli.py``."""

from .cli import main

raise SystemExit(main())
