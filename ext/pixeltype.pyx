# pixelType conversion (docs/protocol.md §1.1): clip to the target range, floats to integers rounding half away
# from zero, NaN and invalid pixels to 0.  The validating wrapper is imgsvc.kernels.convert_pixel_type.

from libc.math cimport round as c_round

from interpolation cimport pixel_t


# A second fused type with pixel_t's members so that source and target types specialise independently (Cython
# specialises every use of one fused type together).
ctypedef fused target_t:
    unsigned char
    signed char
    unsigned short
    short
    unsigned int
    int
    float
    double


def convert(const pixel_t[:, :, ::1] data, const unsigned char[:, ::1] valid, target_t[:, :, ::1] out,
            double low, double high):
    """Write `data` into `out` clipped to [low, high] (the target type's range, or narrower for U1/U2/U4)."""
    cdef Py_ssize_t bands = data.shape[0], rows = data.shape[1], cols = data.shape[2]
    cdef Py_ssize_t b, r, c
    cdef double v
    with nogil:
        for b in range(bands):
            for r in range(rows):
                for c in range(cols):
                    v = <double>data[b, r, c]
                    if not valid[r, c] or v != v:
                        out[b, r, c] = 0
                        continue
                    if (target_t is not float and target_t is not double
                            and (pixel_t is float or pixel_t is double)):
                        # C round(): half away from zero, the rule GDALCopyWords uses for float -> integer.
                        v = c_round(v)
                    # Clip before the cast: converting an out-of-range double to an integer is undefined in C.
                    if v < low:
                        v = low
                    elif v > high:
                        v = high
                    out[b, r, c] = <target_t>v
