# Convolution kernel (docs/protocol.md §6.2 "Convolution"): each pixel's weighted sum of its window, accumulated in
# float64.  The validating wrapper is imgsvc/functions/convolution.py; everything here trusts its arguments (shapes,
# contiguity, taps inside the kernel's extent) so the loops run without the GIL and cannot fail.

from interpolation cimport pixel_t


def correlate(const pixel_t[:, :, ::1] data, const unsigned char[:, ::1] valid,
              const Py_ssize_t[::1] tap_rows, const Py_ssize_t[::1] tap_cols, const double[::1] weights,
              double[:, :, ::1] out, unsigned char[:, ::1] out_valid):
    """out[b, r, c] = sum over k of weights[k] * data[b, r + tap_rows[k], c + tap_cols[k]] (the kernel applied as
    it is written, row 0 north: a correlation), for every band.

    A pixel is valid (out_valid 1) when each of its taps lies in the array on a valid pixel and its sum is finite;
    otherwise out_valid is 0 and out holds 0 for the bands computed after that was known.
    """
    cdef Py_ssize_t bands = data.shape[0], rows = data.shape[1], cols = data.shape[2], taps = weights.shape[0]
    cdef Py_ssize_t b, r, c, k, rr, cc
    cdef double total
    cdef unsigned char ok
    with nogil:
        for r in range(rows):
            for c in range(cols):
                ok = 1
                for k in range(taps):
                    rr = r + tap_rows[k]
                    cc = c + tap_cols[k]
                    if rr < 0 or rr >= rows or cc < 0 or cc >= cols or not valid[rr, cc]:
                        ok = 0
                        break
                out_valid[r, c] = ok
        for b in range(bands):
            for r in range(rows):
                for c in range(cols):
                    total = 0.0
                    if out_valid[r, c]:
                        for k in range(taps):
                            total = total + weights[k] * <double>data[b, r + tap_rows[k], c + tap_cols[k]]
                        if total - total != 0:  # inf or NaN: an overflow is NoData, never a value
                            out_valid[r, c] = 0
                            total = 0.0
                    out[b, r, c] = total
