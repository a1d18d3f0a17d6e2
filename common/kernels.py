"""Framework-neutral choices of how TF's and Flax's compiled code lays out a product for XLA's CPU kernels, so the
two frameworks decide alike."""

# A decoding step has few rows. XLA's CPU dot multiplies them by a [vocab, hidden] table about twice as fast with
# the table as the left operand (its output [vocab, rows]) as with the rows on the left; an optimization barrier
# then stops XLA from folding the transpose back into the dot, which would bring the slow kernel back. Past about
# 32 rows the usual form wins (benchmarks/generate.py measures the effect on whole generations).
TABLE_ON_LEFT_MAX_ROWS = 32


def table_on_left(rows: int) -> bool:
    """Whether ``rows`` rows are multiplied by a token table with the table as the dot's left operand."""
    return rows <= TABLE_ON_LEFT_MAX_ROWS
