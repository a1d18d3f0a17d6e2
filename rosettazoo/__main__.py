"""``python -m rosettazoo convert|info ...``: the ``rosettazoo`` command line (see rosettazoo.conversion.cli)."""

from .conversion.cli import main

raise SystemExit(main(prog="python -m rosettazoo"))
