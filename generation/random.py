"""Random draws that are the same in PyTorch, TensorFlow and JAX, for seeded sampling.

The three frameworks' generators differ, so a seed alone cannot make them sample the same tokens. Here every draw
is a hash of (seed, step, counter) in 32-bit integer arithmetic, which every backend computes bit for bit alike:
int32 multiplication wraps modulo 2**32 as unsigned multiplication does, and shifts are made logical. The 23 top
bits of the hash become a float32 in (0, 1) exactly ((k + 0.5) / 2**23 needs 24 significant bits, as many as float32
has: with 24 bits the largest value would round to 1.0 and its Gumbel noise to +inf), so the uniform numbers are
identical across frameworks; only the Gumbel transform's ``log`` may differ in the last bit, which moves a choice
only when two candidates tie to within float32 rounding.
"""

from __future__ import annotations

_MULTIPLIER_1 = 0x7FEB352D
_MULTIPLIER_2 = 0x846CA68B - (1 << 32)  # as a signed int32: the product's low 32 bits are the same
_UNIFORM_BITS = 23
_UNIFORM_SCALE = 2.0 ** -_UNIFORM_BITS


def to_int32(value: int) -> int:
    """A Python integer's low 32 bits as a signed int32 value."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _mix(ops, x):
    """A 32-bit integer hash with good avalanche (Wellons' "lowbias32"), on int32 tensors."""
    x = ops.bitwise_xor(x, ops.shift_right_logical(x, 16))
    x = x * _MULTIPLIER_1
    x = ops.bitwise_xor(x, ops.shift_right_logical(x, 15))
    x = x * _MULTIPLIER_2
    return ops.bitwise_xor(x, ops.shift_right_logical(x, 16))


def stream_key(ops, seed, step):
    """The key of one decoding step's draws: a hash of the seed (a Python int or an int32 scalar, which may be
    traced: a new seed needs no new compiled program) and ``step`` (an int32 scalar).

    The seed is hashed twice and the step once, so that (seed, step) and (step, seed) get different keys (with the
    same hash on both sides, seed a's step b would repeat seed b's step a, and step s of every seed s share key 0).
    """
    seed = ops.constant(to_int32(seed), ops.int32) if isinstance(seed, int) else ops.cast(seed, ops.int32)
    seeded = _mix(ops, _mix(ops, seed))
    return _mix(ops, ops.bitwise_xor(seeded, _mix(ops, ops.cast(step, ops.int32))))


def uniform(ops, key, shape: tuple[int, int]):
    """float32 numbers in (0, 1), one per element of a [rows, columns] array, determined by ``key``.

    The counters are hashed before the key is mixed in: ``counter ^ key`` alone would hash the same inputs for
    two keys that differ only in their low bits (the same draws, permuted), and lowbias32 of consecutive integers
    is measurably non-uniform over a few million of them (chi-square p < 1e-14 at 2**22); two rounds are not.
    """
    rows, columns = shape
    counters = ops.arange(rows)[:, None] * columns + ops.arange(columns)[None, :]
    bits = _mix(ops, ops.bitwise_xor(_mix(ops, counters), key))
    top = ops.shift_right_logical(bits, 32 - _UNIFORM_BITS)
    return (ops.cast(top, ops.float32) + 0.5) * _UNIFORM_SCALE


def gumbel(ops, key, shape: tuple[int, int]):
    """Gumbel(0, 1) noise: argmax(scores + noise) samples from softmax(scores), and its top k sample k candidates
    without replacement."""
    return -ops.log(-ops.log(uniform(ops, key, shape)))
