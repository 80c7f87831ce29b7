# Surface kernels over a DEM's 3x3 window (docs/protocol.md §6.2): hillshade, slope and aspect, curvature.  The
# validating wrapper is imgsvc.functions.surface; every check is made there, so these loops cannot fail.
#
# The window, row 0 = north, is a b c / d e f / g h i, read into w[0..8].  Horn's sums are
#     sx = (c + 2f + i) - (a + 2d + g)        sy = (g + 2h + i) - (a + 2b + c)
# and each row r carries its own factors (kx[r], ky[r]), so that a geographic grid's cell width may follow the
# latitude of the row.  NoData: an invalid (or non-finite) centre, or two or more invalid neighbours, give an
# invalid output; exactly one invalid neighbour takes the centre value.  Neighbours outside the array are invalid.
# An output that is not finite (overflow) is invalid too; invalid outputs hold 0.

from libc.math cimport atan, atan2, fabs, isfinite, sqrt

from interpolation cimport pixel_t

cdef double DEGREES = 57.29577951308232
# The largest float32: a larger value (or inf, NaN, which compare false) cannot be an F32 output.
cdef double FLOAT32_MAX = 3.4028234663852886e38


cdef inline bint window(const pixel_t[:, ::1] z, const unsigned char[:, ::1] valid, Py_ssize_t r, Py_ssize_t c,
                        double* w) noexcept nogil:
    """Fill w[0..8] with the window centred on (r, c); False when the output pixel is NoData."""
    cdef Py_ssize_t rows = z.shape[0], cols = z.shape[1]
    cdef Py_ssize_t dr, dc, rr, cc
    cdef int k, missing = -1
    cdef double v, total = 0.0
    # Most windows lie inside the array with nine valid pixels: read them without the per-pixel checks.  A finite
    # sum proves every value finite (an infinity or NaN would make it non-finite); only a sum overflowing from
    # finite float64 values near 1e308 takes the careful path below for nothing.
    if 0 < r < rows - 1 and 0 < c < cols - 1 and (
            valid[r - 1, c - 1] & valid[r - 1, c] & valid[r - 1, c + 1] & valid[r, c - 1] & valid[r, c]
            & valid[r, c + 1] & valid[r + 1, c - 1] & valid[r + 1, c] & valid[r + 1, c + 1]):
        for dr in range(3):
            for dc in range(3):
                v = <double>z[r + dr - 1, c + dc - 1]
                w[3 * dr + dc] = v
                total = total + v
        if isfinite(total):
            return True
    if not valid[r, c] or not isfinite(<double>z[r, c]):
        return False
    for dr in range(3):
        rr = r + dr - 1
        for dc in range(3):
            cc = c + dc - 1
            k = <int>(3 * dr + dc)
            if 0 <= rr < rows and 0 <= cc < cols and valid[rr, cc]:
                v = <double>z[rr, cc]
                if isfinite(v):
                    w[k] = v
                    continue
            if missing >= 0:
                return False
            missing = k
    if missing >= 0:
        w[missing] = w[4]
    return True


cdef inline bint gradient(const pixel_t[:, ::1] z, const unsigned char[:, ::1] valid, const double[::1] kx,
                          const double[::1] ky, Py_ssize_t r, Py_ssize_t c, double* dx, double* dy) noexcept nogil:
    """Horn's dx = sx·kx[r], dy = sy·ky[r] at (r, c); False when the output pixel is NoData."""
    cdef double w[9]
    if not window(z, valid, r, c, w):
        return False
    dx[0] = ((w[2] + 2.0 * w[5] + w[8]) - (w[0] + 2.0 * w[3] + w[6])) * kx[r]
    dy[0] = ((w[6] + 2.0 * w[7] + w[8]) - (w[0] + 2.0 * w[1] + w[2])) * ky[r]
    return isfinite(dx[0]) and isfinite(dy[0])


# What gradient_map computes (imgsvc.functions.surface passes them by name).
cpdef enum Measure:
    HILLSHADE
    SLOPE_DEGREES
    SLOPE_PERCENT
    ASPECT


ctypedef fused out_t:
    unsigned char
    float


cdef inline double shaded(const double[:, ::1] lights, double dx, double dy) noexcept nogil:
    """The sum of weight * 255 * max(0, cos i) over the lights, each a row (cos zen, -sin zen cos az,
    sin zen sin az, weight) with az = 450 - azimuth: cos i = (cos zen + lx dx + ly dy) / sqrt(1 + dx^2 + dy^2)."""
    cdef double norm = sqrt(1.0 + dx * dx + dy * dy), shade, total = 0.0
    cdef Py_ssize_t k
    for k in range(lights.shape[0]):
        shade = (lights[k, 0] + lights[k, 1] * dx + lights[k, 2] * dy) / norm
        if shade > 0.0:
            total = total + lights[k, 3] * 255.0 * shade
    return total if total < 255.0 else 255.0  # the weights sum to 1: only rounding error can pass 255


cdef inline double facing(double dx, double dy) noexcept nogil:
    """Degrees clockwise from north of the direction the slope faces, in [0, 360); -1 where flat."""
    cdef double value
    if dx == 0.0 and dy == 0.0:
        return -1.0
    value = 90.0 - atan2(dy, -dx) * DEGREES
    if value < 0.0:
        value = value + 360.0
    if value >= 360.0:  # float rounding of a value just under 360
        value = value - 360.0
    return value


def gradient_map(const pixel_t[:, ::1] z, const unsigned char[:, ::1] valid, const double[::1] kx,
                 const double[::1] ky, Measure measure, const double[:, ::1] lights, out_t[:, ::1] out,
                 unsigned char[:, ::1] out_valid):
    """A measure of Horn's gradient at every pixel: HILLSHADE under ``lights`` (rounded into uint8 ``out``),
    SLOPE_DEGREES atan(rise) in degrees, SLOPE_PERCENT 100 rise (rise = sqrt(dx^2 + dy^2)), or ASPECT."""
    cdef Py_ssize_t rows = z.shape[0], cols = z.shape[1]
    cdef Py_ssize_t r, c
    cdef double dx, dy, value
    with nogil:
        for r in range(rows):
            for c in range(cols):
                out[r, c] = 0
                out_valid[r, c] = 0
                if not gradient(z, valid, kx, ky, r, c, &dx, &dy):
                    continue
                if measure == HILLSHADE:
                    value = shaded(lights, dx, dy)
                elif measure == ASPECT:
                    value = facing(dx, dy)
                elif measure == SLOPE_PERCENT:
                    value = 100.0 * sqrt(dx * dx + dy * dy)
                else:
                    value = atan(sqrt(dx * dx + dy * dy)) * DEGREES
                if not fabs(value) <= FLOAT32_MAX:  # overflow, or NaN from an infinite slope
                    continue
                if out_t is float:
                    out[r, c] = <float>value
                else:
                    out[r, c] = <unsigned char>(value + 0.5)
                out_valid[r, c] = 1


def curvature(const pixel_t[:, ::1] z, const unsigned char[:, ::1] valid, const double[::1] cx,
              const double[::1] cy, double zfactor, int kind, float[:, ::1] out, unsigned char[:, ::1] out_valid):
    """Zevenbergen-Thorne curvature, x 100 (Esri's units: 1/100 z-unit per map unit squared); kind 0 standard
    -2(D + E), 1 profile 2(D G^2 + E H^2 + F G H)/(G^2 + H^2), 2 planform -2(D H^2 + E G^2 - F G H)/(G^2 + H^2),
    so that standard = planform - profile; profile and planform are 0 where the surface is flat (G = H = 0: no
    direction to curve along)."""
    cdef Py_ssize_t rows = z.shape[0], cols = z.shape[1]
    cdef Py_ssize_t r, c
    cdef double w[9]
    cdef double lx, ly, e, d2x, d2y, dxy, gx, gy, gradient, value
    with nogil:
        for r in range(rows):
            lx = cx[r]
            ly = cy[r]
            for c in range(cols):
                out[r, c] = 0
                out_valid[r, c] = 0
                if not window(z, valid, r, c, w):
                    continue
                e = w[4]
                d2x = zfactor * ((w[3] + w[5]) / 2.0 - e) / (lx * lx)                      # D
                d2y = zfactor * ((w[1] + w[7]) / 2.0 - e) / (ly * ly)                      # E
                dxy = zfactor * (-w[0] + w[2] + w[6] - w[8]) / (4.0 * lx * ly)             # F
                gx = zfactor * (w[5] - w[3]) / (2.0 * lx)                                  # G
                gy = zfactor * (w[1] - w[7]) / (2.0 * ly)                                  # H
                gradient = gx * gx + gy * gy
                if kind == 0:
                    value = -2.0 * (d2x + d2y)
                elif gradient == 0.0:
                    value = 0.0
                elif kind == 1:
                    value = 2.0 * (d2x * gx * gx + d2y * gy * gy + dxy * gx * gy) / gradient
                else:
                    value = -2.0 * (d2x * gy * gy + d2y * gx * gx - dxy * gx * gy) / gradient
                value = 100.0 * value
                if fabs(value) <= FLOAT32_MAX:
                    out[r, c] = <float>value
                    out_valid[r, c] = 1
