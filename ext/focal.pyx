# Focal statistics kernel (docs/protocol.md §6.2 "Statistics"): the minimum, maximum, median, majority or minority
# of the valid pixels of each pixel's window.  The validating wrapper is imgsvc/functions/focal.py; everything here
# trusts its arguments so the loops run without the GIL and cannot fail.
#
# Min and max scan each window.  For the others each row keeps its window's valid values sorted while the window
# slides east: a step removes the column that leaves and inserts the column that enters (binary search, then one
# memmove each), so a step costs a few moves of at most rows x cols values instead of a sort of the whole window.

from libc.string cimport memmove

from interpolation cimport pixel_t


# The ArcGIS StatisticsType codes of the statistics computed here (Mean and StandardDeviation are box sums in numpy).
cdef enum Statistic:
    S_MIN = 1
    S_MAX = 2
    S_MEDIAN = 5
    S_MAJORITY = 6
    S_MINORITY = 7

STATISTICS = (S_MIN, S_MAX, S_MEDIAN, S_MAJORITY, S_MINORITY)


cdef inline Py_ssize_t first_not_below(const double* values, Py_ssize_t n, double v) noexcept nogil:
    """The index of the first of n ascending values that is >= v (n when none is)."""
    cdef Py_ssize_t low = 0, high = n, middle
    while low < high:
        middle = (low + high) // 2
        if values[middle] < v:
            low = middle + 1
        else:
            high = middle
    return low


cdef inline Py_ssize_t insert(double* values, Py_ssize_t n, double v) noexcept nogil:
    cdef Py_ssize_t at = first_not_below(values, n, v)
    memmove(&values[at + 1], &values[at], (n - at) * sizeof(double))
    values[at] = v
    return n + 1


cdef inline Py_ssize_t remove(double* values, Py_ssize_t n, double v) noexcept nogil:
    """Remove one v, which the values hold (it was inserted and not removed since)."""
    cdef Py_ssize_t at = first_not_below(values, n, v)
    memmove(&values[at], &values[at + 1], (n - at - 1) * sizeof(double))
    return n - 1


cdef inline double of_sorted(const double* values, Py_ssize_t n, int statistic) noexcept nogil:
    """The median, majority or minority of n >= 1 ascending values.  Majority and minority take the value with the
    most / fewest occurrences, the smallest such value on a tie (the first run found)."""
    if statistic == S_MEDIAN:  # the middle value, or the mean of the two middle values
        return (values[(n - 1) // 2] + values[n // 2]) / 2
    cdef double best = values[0]
    cdef Py_ssize_t best_count = -1, i = 0, j
    while i < n:
        j = i + 1
        while j < n and values[j] == values[i]:
            j += 1
        if (best_count < 0 or (statistic == S_MAJORITY and j - i > best_count)
                or (statistic == S_MINORITY and j - i < best_count)):
            best_count = j - i
            best = values[i]
        i = j
    return best


cdef inline double extreme(const pixel_t[:, :, ::1] data, const unsigned char[:, ::1] valid, Py_ssize_t b,
                          Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t c0, Py_ssize_t c1, bint largest) noexcept nogil:
    """The min (or max) of band b's valid values in rows [r0, r1) and columns [c0, c1); 0 when none is valid."""
    cdef Py_ssize_t i, j
    cdef double v, result = 0.0
    cdef bint found = False
    for i in range(r0, r1):
        for j in range(c0, c1):
            v = <double>data[b, i, j]
            if valid[i, j] and v == v and (not found or (v > result if largest else v < result)):
                result = v
                found = True
    return result


def window_statistic(const pixel_t[:, :, ::1] data, const unsigned char[:, ::1] valid, Py_ssize_t window_rows,
                     Py_ssize_t window_cols, int statistic, double[:, :, ::1] out, double[::1] scratch):
    """out[b, r, c] = the statistic of the valid pixels of band b in the window_rows x window_cols window whose
    centre is (r, c) (rows r - window_rows // 2 to r - window_rows // 2 + window_rows - 1, columns likewise), 0
    where the window holds none.  ``scratch`` holds at least window_rows * window_cols values."""
    cdef Py_ssize_t bands = data.shape[0], rows = data.shape[1], cols = data.shape[2]
    cdef Py_ssize_t b, r, c, i, j, n, r0, r1
    cdef double v
    cdef double* values = &scratch[0]
    with nogil:
        for b in range(bands):
            for r in range(rows):
                r0 = max(r - window_rows // 2, 0)
                r1 = min(r - window_rows // 2 + window_rows, rows)
                if statistic == S_MIN or statistic == S_MAX:
                    for c in range(cols):
                        out[b, r, c] = extreme(data, valid, b, r0, r1, max(c - window_cols // 2, 0),
                                               min(c - window_cols // 2 + window_cols, cols), statistic == S_MAX)
                    continue
                n = 0
                for j in range(min(window_cols - window_cols // 2 - 1, cols)):  # the columns east of column 0
                    for i in range(r0, r1):
                        v = <double>data[b, i, j]
                        if valid[i, j] and v == v:
                            n = insert(values, n, v)
                for c in range(cols):
                    j = c - window_cols // 2 + window_cols - 1  # the column entering the window
                    if j < cols:
                        for i in range(r0, r1):
                            v = <double>data[b, i, j]
                            if valid[i, j] and v == v:
                                n = insert(values, n, v)
                    out[b, r, c] = of_sorted(values, n, statistic) if n else 0.0
                    j = c - window_cols // 2  # the column leaving the window
                    if j >= 0:
                        for i in range(r0, r1):
                            v = <double>data[b, i, j]
                            if valid[i, j] and v == v:
                                n = remove(values, n, v)
