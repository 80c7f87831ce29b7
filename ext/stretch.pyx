# Linear stretch of one band's values onto output levels (docs/protocol.md §6.2 "Stretch").  The validating wrapper
# is imgsvc.kernels.stretch_levels (which raises to a gamma in numpy: its SIMD power is faster than libm's pow);
# imgsvc.functions.stretch says where lo and hi come from.

from libc.math cimport floor


ctypedef fused real_t:
    float
    double


def levels(const real_t[::1] values, double lo, double hi, double low, double span, bint quantise,
           double[::1] out):
    """t = (v - lo) / (hi - lo) clipped to [0, 1] (when hi <= lo: 0 up to lo, 1 above); out = low + floor(t * span)
    with NaN giving 0 when ``quantise``, else out = t with NaN kept."""
    cdef Py_ssize_t i, n = values.shape[0]
    cdef double v, t
    cdef bint ranged = hi > lo
    with nogil:
        for i in range(n):
            v = values[i]
            if v != v:
                out[i] = 0 if quantise else v
                continue
            if ranged:
                t = (v - lo) / (hi - lo)  # divided, not multiplied by a reciprocal: the same levels as numpy's
                if t < 0:
                    t = 0
                elif t > 1:
                    t = 1
            else:
                t = 1.0 if v > lo else 0.0
            out[i] = low + floor(t * span) if quantise else t
