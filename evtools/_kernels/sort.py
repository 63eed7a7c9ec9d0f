"""Sorting float columns by their bits: an LSD radix sort in numba.

A tail fit needs a column's threshold, its exceedances in order and 64 body
knots spread over the whole column: nearly a sort. ``np.sort``'s speed
depends on the host's SIMD sort (about 5 x apart between machines); a radix
sort of the floats' bit patterns costs the same few passes over the column on
any host (float32: three 11-bit digits; float64: six), without comparisons.

The bit pattern of an IEEE float, with the sign bit set for positive values
and every bit inverted for negative ones, orders like the float itself
(``-0.0`` just before ``+0.0``, which compare equal). Columns reaching these
kernels are finite (callers check); infinities sort correctly too.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

_DIGIT_BITS = 11
_BUCKETS = 1 << _DIGIT_BITS
_MASK = np.uint64(_BUCKETS - 1)


def _to_ordered_bits(col):
    """``col`` (float32/float64, contiguous) reinterpreted in place as unsigned integers that order like it."""
    raise NotImplementedError("called from numba code only")


def _from_ordered_bits(bits):
    """Undo :func:`_to_ordered_bits` in place."""
    raise NotImplementedError("called from numba code only")


def _bit_constants(dtype):
    """``(unsigned type, its top bit, all ones)`` for a float numba type, or None."""
    unsigned = {types.float32: np.uint32, types.float64: np.uint64}.get(dtype)
    if unsigned is None:
        return None
    width = 8 * np.dtype(unsigned).itemsize
    return unsigned, unsigned(1 << (width - 1)), unsigned((1 << width) - 1)


@overload(_to_ordered_bits, inline="always")
def _to_ordered_bits_impl(col):
    constants = _bit_constants(col.dtype)
    if constants is None:
        return None
    unsigned, top, ones = constants

    def impl(col):
        bits = col.view(unsigned)
        for i in range(bits.shape[0]):
            b = bits[i]
            bits[i] = b ^ (ones if b & top else top)
        return bits
    return impl


@overload(_from_ordered_bits, inline="always")
def _from_ordered_bits_impl(bits):
    unsigned = {types.uint32: np.uint32, types.uint64: np.uint64}.get(bits.dtype)
    if unsigned is None:
        return None
    width = 8 * np.dtype(unsigned).itemsize
    top, ones = unsigned(1 << (width - 1)), unsigned((1 << width) - 1)

    def impl(bits):
        for i in range(bits.shape[0]):
            b = bits[i]
            bits[i] = b ^ (top if b & top else ones)
    return impl


@njit(cache=True, nogil=True)
def _is_sorted(col):
    for i in range(1, col.shape[0]):
        if not col[i] >= col[i - 1]:
            return False
    return True


@njit(cache=True, nogil=True)
def sort_column(col):
    """Sort the contiguous float32/float64 array ``col`` in place, ascending.

    Equal to ``np.sort`` value for value; among equal values ``-0.0`` comes
    before ``+0.0``. An already sorted column costs one pass.
    """
    n = col.shape[0]
    if n < 2 or _is_sorted(col):
        return
    bits = _to_ordered_bits(col)
    n_digits = (8 * bits.itemsize + _DIGIT_BITS - 1) // _DIGIT_BITS
    counts = np.zeros((n_digits, _BUCKETS), dtype=np.int64)
    for i in range(n):  # every digit's histogram in one pass
        k = np.uint64(bits[i])
        for d in range(n_digits):
            counts[d, (k >> np.uint64(d * _DIGIT_BITS)) & _MASK] += 1
    src, dst = bits, np.empty_like(bits)
    moves = 0
    for d in range(n_digits):
        shift = np.uint64(d * _DIGIT_BITS)
        if counts[d, (np.uint64(src[0]) >> shift) & _MASK] == n:
            continue  # every value has the same digit here: nothing to move
        start = 0
        for b in range(_BUCKETS):
            c = counts[d, b]
            counts[d, b] = start
            start += c
        for i in range(n):  # stable scatter by this digit
            k = src[i]
            b = (np.uint64(k) >> shift) & _MASK
            dst[counts[d, b]] = k
            counts[d, b] += 1
        src, dst = dst, src
        moves += 1
    if moves % 2:  # the result is in the scratch array
        bits[:] = src
    _from_ordered_bits(bits)


@njit(cache=True, nogil=True)
def sort_rows(T):
    """Sort every row of the C-ordered float32/float64 matrix ``T`` in place."""
    for j in range(T.shape[0]):
        sort_column(T[j])
