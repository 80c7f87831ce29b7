# Band indices (docs/protocol.md §6.2): the normalized difference (a − b)/(a + b) of two bands, the core of NDVI
# and of most BandArithmetic methods, in one pass without numpy's float64 temporaries.  The validating wrapper is
# imgsvc.functions.bands.normalized_difference_pixels.

from libc.float cimport FLT_MAX
from libc.math cimport fabs

from interpolation cimport pixel_t


def normalized_difference(const pixel_t[:, ::1] a, const pixel_t[:, ::1] b, const unsigned char[:, ::1] valid,
                          float[:, ::1] out, unsigned char[:, ::1] out_valid):
    """Write (a − b)/(a + b) into `out` (float32) and 1 into `out_valid` where `valid` is set, a + b is not 0 and
    the ratio is finite within float32; elsewhere 0 and 0.  All arrays have one shape (checked by the caller)."""
    cdef Py_ssize_t rows = a.shape[0], cols = a.shape[1]
    cdef Py_ssize_t r, c
    cdef double x, y, total, ratio
    with nogil:
        for r in range(rows):
            for c in range(cols):
                x = <double>a[r, c]
                y = <double>b[r, c]
                total = x + y
                # total != total: NaN in an input; the ratio's own NaN (inf/inf) fails fabs(ratio) <= FLT_MAX.
                if not valid[r, c] or total == 0 or total != total:
                    out[r, c] = 0
                    out_valid[r, c] = 0
                    continue
                ratio = (x - y) / total
                if fabs(ratio) <= FLT_MAX:
                    out[r, c] = <float>ratio
                    out_valid[r, c] = 1
                else:
                    out[r, c] = 0
                    out_valid[r, c] = 0
