# Polygon rasterisation for Clip (docs/protocol.md §6.2): fill the pixel runs between the crossings of each pixel
# row, by the even-odd rule.  The validating wrapper is imgsvc.functions.clip.even_odd_mask.


def fill_even_odd(const Py_ssize_t[::1] rows, const Py_ssize_t[::1] cols, unsigned char[:, ::1] out):
    """Set out[row, c0:c1] for each pair of successive crossings (c0, c1) of a row: the 1st and 2nd, the 3rd and
    4th...  `rows` and `cols` hold the crossings sorted by row then column, each row in 0..height-1 and each column
    in 0..width (the caller checks), so every row has an even number of them (closed rings)."""
    cdef Py_ssize_t n = rows.shape[0]
    cdef Py_ssize_t i = 0, c
    with nogil:
        while i + 1 < n:
            if rows[i + 1] != rows[i]:  # an odd count in a row (not from closed rings): its last crossing stands alone
                i += 1
                continue
            for c in range(cols[i], cols[i + 1]):
                out[rows[i], c] = 1
            i += 2
