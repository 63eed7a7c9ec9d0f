"""Sorting float columns by their bits: an LSD radix sort in numba.

A tail fit needs a column's threshold, its exceedances in order and 64 body
knots spread over the whole column: nearly a sort. ``np.sort``'s speed
depends on the host's SIMD sort (about 5 x apart between machines); a radix
sort of the floats' bit patterns costs the same few passes over the column on
any host (float32: three 11-bit digits; float64: six), without comparisons.

The bit pattern of an IEEE float, with the sign bit set for a positive value
and every bit inverted for a negative one, orders like the float (``-0.0``
just before ``+0.0``, which compare equal). The kernels take the unsigned
type of the column's width and its two masks, ``radix_keys(dtype)``.
Columns reaching these kernels are finite (callers check); infinities sort
correctly too. Other kernels sort their samples with :func:`sorted_float64`
or :func:`sort_float64` (not numba's quicksort, which compiles for 1.5 s per
array type).
"""
import numpy as np
from numba import njit

_DIGIT_BITS = 11
_BUCKETS = 1 << _DIGIT_BITS
_MASK = np.uint64(_BUCKETS - 1)


def radix_keys(dtype):
    """``(key, top, ones)`` for float32 or float64 columns: the unsigned type of that width,
    its sign bit and all its bits set, as the sort kernels take them."""
    width = 8 * np.dtype(dtype).itemsize
    key = {32: np.uint32, 64: np.uint64}[width]
    return key, key(1 << (width - 1)), key((1 << width) - 1)


@njit(cache=True, nogil=True)
def sort_column(col, key, top, ones):
    """Sort the contiguous float32/float64 array ``col`` in place, ascending; ``key, top, ones``:
    :func:`radix_keys` of its dtype.

    Equal to ``np.sort`` value for value; among equal values ``-0.0`` comes
    before ``+0.0``. An already sorted column costs one pass.
    """
    n = col.shape[0]
    i = 1
    while i < n and col[i] >= col[i - 1]:
        i += 1
    if i >= n:  # already sorted (or shorter than 2)
        return
    bits = col.view(key)
    for i in range(n):  # to keys that order like the floats
        b = bits[i]
        bits[i] = b ^ (ones if b & top else top)
    n_digits = (8 * bits.itemsize + _DIGIT_BITS - 1) // _DIGIT_BITS
    counts = np.empty((n_digits, _BUCKETS), dtype=np.int64)  # zeroed in a loop: np.zeros compiles slower
    for d in range(n_digits):
        for b in range(_BUCKETS):
            counts[d, b] = 0
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
    for i in range(n):  # back to the floats' bits (from the scratch array after an odd number of moves)
        b = src[i]
        bits[i] = b ^ (top if b & top else ones)


@njit(cache=True, nogil=True)
def sort_rows(T, key, top, ones):
    """Sort every row of the C-ordered float32/float64 matrix ``T`` in place (:func:`sort_column`)."""
    for j in range(T.shape[0]):
        sort_column(T[j], key, top, ones)


_F64_KEYS = radix_keys(np.float64)


@njit(cache=True, nogil=True)
def sort_float64(y):
    """Sort the contiguous float64 array ``y`` in place (:func:`sort_column`)."""
    sort_column(y, _F64_KEYS[0], _F64_KEYS[1], _F64_KEYS[2])


@njit(cache=True, nogil=True)
def sorted_float64(y):
    """A sorted float64 copy of the 1-D array ``y`` (any float dtype, any strides), like ``np.sort``."""
    ys = np.empty(y.shape[0])
    for i in range(ys.shape[0]):
        ys[i] = y[i]
    sort_float64(ys)
    return ys
