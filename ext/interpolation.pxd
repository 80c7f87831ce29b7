# Per-pixel resampling helpers, header-only: every function is `cdef inline ... noexcept nogil` so the warp loops
# inline them and cannot raise.  They follow GDAL's warp kernel (alg/gdalwarpkernel.cpp) formula by formula, because
# parity with GDAL is the contract: coordinates are in source pixel units with (0, 0) the top-left corner of the
# source array, so the centre of pixel (i, j) is (i + 0.5, j + 0.5).
#
# A sampler reads all bands at one source position and writes one output pixel (all bands); the validity of the
# source is one byte mask shared by the bands (NULL = every pixel valid).  It returns False when the output pixel
# must stay invalid.

from libc.math cimport fabs


ctypedef fused pixel_t:
    unsigned char
    signed char
    unsigned short
    short
    unsigned int
    int
    float
    double


cdef struct Grid:
    # The source array as the samplers see it; `plane` is rows * cols, the distance between bands.
    Py_ssize_t cols
    Py_ssize_t rows
    Py_ssize_t plane
    int bands
    const unsigned char* valid
    double xlimit         # cols and rows as doubles (converted once, not per pixel)
    double ylimit


cdef struct Filter:
    # Downsampling filter of GDAL's general resampler (GWKResample): scale < 1 widens the kernel by 1/scale.
    double xscale
    double yscale
    int xradius
    int yradius
    int xinit
    int yinit
    bint cubic
    bint finite           # every valid source pixel is finite, so a tap of zero weight adds exactly nothing
    double* xweights      # scratch of 2 * xradius + 2 doubles, owned by the caller, one per call
    double* yweights      # scratch of 2 * yradius + 2 doubles, likewise


cdef inline double ffloor(double v) noexcept nogil:
    """floor() for |v| < 2^63 without the libm call (x86-64's baseline SSE2 has no rounding instruction, so the
    compiler cannot inline floor): truncate, then step down where truncation went up (negative non-integers)."""
    cdef double t = <double><long long>v
    return t - 1.0 if t > v else t


cdef inline void store(pixel_t* dst, double value) noexcept nogil:
    """Write a resampled value the way GDAL does (GWKClampValueT): clamp to the type, round half up."""
    if pixel_t is float:
        dst[0] = <float>value
        return
    if pixel_t is double:
        dst[0] = value
        return
    cdef double lo, hi
    if pixel_t is "unsigned char":
        lo, hi = 0.0, 255.0
    elif pixel_t is "signed char":
        lo, hi = -128.0, 127.0
    elif pixel_t is "unsigned short":
        lo, hi = 0.0, 65535.0
    elif pixel_t is short:
        lo, hi = -32768.0, 32767.0
    elif pixel_t is "unsigned int":
        lo, hi = 0.0, 4294967295.0
    else:
        lo, hi = -2147483648.0, 2147483647.0
    # Clamping first keeps the cast defined; floor(v + 0.5) is GDAL's rounding for signed and unsigned alike
    # (computed as truncation stepped down where it rounded up, which every type's range fits in a long long).
    cdef long long i
    if value <= lo:
        dst[0] = <pixel_t>lo
    elif value >= hi:
        dst[0] = <pixel_t>hi
    else:
        value += 0.5
        i = <long long>value
        # Above an unsigned type's low bound value + 0.5 > 0, where truncation is floor already.
        if lo < 0.0 and <double>i > value:
            i -= 1
        dst[0] = <pixel_t>i


cdef inline bint inside(const Grid* g, double x, double y) noexcept nogil:
    """Whether (x, y) lies in the source array, the way GDAL tests it.

    GDAL nudges the lookup by 1e-10 so that a coordinate landing on a pixel boundary give or take rounding noise
    picks the pixel after it (GWKNearest*, GWKGeneralCase); matching it matters on exact 2:1 grids.  NaN coordinates
    (points that could not be projected) fail the comparisons.
    """
    return x >= 0.0 and y >= 0.0 and x + 1e-10 < g.xlimit and y + 1e-10 < g.ylimit


cdef inline Py_ssize_t centre_offset(const Grid* g, double x, double y) noexcept nogil:
    """Offset of the source pixel holding (x, y), which must be inside()."""
    return <Py_ssize_t>(y + 1e-10) * g.cols + <Py_ssize_t>(x + 1e-10)


cdef inline Py_ssize_t centre_pixel(const Grid* g, double x, double y) noexcept nogil:
    """Offset of the source pixel holding (x, y), or -1 when it is outside the array or invalid.

    Every GDAL kernel but average/mode skips an output pixel whose containing source pixel is missing, whatever the
    interpolation.
    """
    if not inside(g, x, y):
        return -1
    cdef Py_ssize_t offset = centre_offset(g, x, y)
    if g.valid != NULL and not g.valid[offset]:
        return -1
    return offset


cdef inline bint centre_present(const Grid* g, double x, double y) noexcept nogil:
    """centre_pixel(g, x, y) >= 0, without computing the offset when there is no mask."""
    return inside(g, x, y) and (g.valid == NULL or g.valid[centre_offset(g, x, y)])


cdef inline bint sample_bilinear(const pixel_t* src, const Grid* g, double x, double y, const Filter* f,
                                 pixel_t* dst, Py_ssize_t dplane) noexcept nogil:
    """GWKBilinearResample4Sample: 2x2 neighbours, weights renormalised over the in-range, valid ones."""
    if not centre_present(g, x, y):
        return False
    cdef Py_ssize_t ix = <Py_ssize_t>ffloor(x - 0.5)
    cdef Py_ssize_t iy = <Py_ssize_t>ffloor(y - 0.5)
    cdef double rx = 1.5 - (x - ix)
    cdef double ry = 1.5 - (y - iy)
    cdef Py_ssize_t o0 = iy * g.cols + ix
    if (ix >= 0 and iy >= 0 and ix + 1 < g.cols and iy + 1 < g.rows
            and (g.valid == NULL or (g.valid[o0] and g.valid[o0 + 1] and g.valid[o0 + g.cols]
                                     and g.valid[o0 + g.cols + 1]))):
        # All four taps present: GDAL's no-mask formula, in its order of operations.  The grid is read into locals
        # first: a byte store may alias *g, which would make the compiler reload it after every band.
        return bilinear_taps(src + o0, g.cols, g.plane, g.bands, rx, ry, dst, dplane)
    return bilinear_partial(src, g, ix, iy, rx, ry, dst, dplane)


cdef inline bint bilinear_taps(const pixel_t* p, Py_ssize_t cols, Py_ssize_t plane, int bands, double rx, double ry,
                               pixel_t* dst, Py_ssize_t dplane) noexcept nogil:
    cdef double sx = 1.0 - rx, sy = 1.0 - ry
    cdef int b
    for b in range(bands):
        store(dst, (p[0] * rx + p[1] * sx) * ry + (p[cols] * rx + p[cols + 1] * sx) * sy)
        p += plane
        dst += dplane
    return True


cdef inline bint bilinear_partial(const pixel_t* src, const Grid* g, Py_ssize_t ix, Py_ssize_t iy, double rx,
                                  double ry, pixel_t* dst, Py_ssize_t dplane) noexcept nogil:
    """The 2x2 taps at the array's edge or next to invalid pixels: those present, their weights renormalised (kept
    apart from sample_bilinear so that the common case stays small enough to inline)."""
    cdef double w[4]
    cdef Py_ssize_t o[4]
    cdef int n = 0, k, b
    cdef double divisor = 0.0, acc
    cdef Py_ssize_t cx, cy
    cdef int dx, dy
    for dy in range(2):
        cy = iy + dy
        if cy < 0 or cy >= g.rows:
            continue
        for dx in range(2):
            cx = ix + dx
            if cx < 0 or cx >= g.cols:
                continue
            if g.valid != NULL and not g.valid[cy * g.cols + cx]:
                continue
            w[n] = (rx if dx == 0 else 1.0 - rx) * (ry if dy == 0 else 1.0 - ry)
            o[n] = cy * g.cols + cx
            divisor += w[n]
            n += 1
    if divisor < 0.00001:
        return False
    for b in range(g.bands):
        acc = 0.0
        for k in range(n):
            acc += src[b * g.plane + o[k]] * w[k]
        if divisor != 1.0:
            acc /= divisor
        store(&dst[b * dplane], acc)
    return True


cdef inline void cubic_weights(double t, double* c) noexcept nogil:
    """Keys cubic convolution (a = -0.5) weights of the 4 taps around t in [0, 1): GWKCubicComputeWeights."""
    cdef double half = 0.5 * t
    cdef double three = 3.0 * t
    cdef double half2 = half * t
    c[0] = half * (-1.0 + t * (2.0 - t))
    c[1] = 1.0 + half2 * (-5.0 + three)
    c[2] = half * (1.0 + t * (4.0 - three))
    c[3] = half2 * (-1.0 + t)


cdef inline bint sample_cubic(const pixel_t* src, const Grid* g, double x, double y, const Filter* f,
                              pixel_t* dst, Py_ssize_t dplane) noexcept nogil:
    """GWKCubicResample4Sample: 4x4 cubic convolution; bilinear at the array border or if any tap is invalid."""
    if not centre_present(g, x, y):
        return False
    # GDAL truncates (not floors) here; x, y >= 0 so it is the same except in [0, 0.5), which is a border anyway.
    cdef Py_ssize_t ix = <Py_ssize_t>(x - 0.5)
    cdef Py_ssize_t iy = <Py_ssize_t>(y - 0.5)
    if ix - 1 < 0 or ix + 2 >= g.cols or iy - 1 < 0 or iy + 2 >= g.rows or x < 0.5 or y < 0.5:
        return sample_bilinear(src, g, x, y, f, dst, dplane)
    cdef Py_ssize_t top = (iy - 1) * g.cols + ix - 1
    cdef int i, j, b
    if g.valid != NULL:
        for j in range(4):
            for i in range(4):
                if not g.valid[top + j * g.cols + i]:
                    return sample_bilinear(src, g, x, y, f, dst, dplane)
    cdef double cx[4]
    cdef double cy[4]
    cubic_weights(x - 0.5 - ix, cx)
    cubic_weights(y - 0.5 - iy, cy)
    # Locals, not *g, in the band loop: a byte store may alias *g and force reloads.
    cdef Py_ssize_t cols = g.cols, plane = g.plane
    cdef int bands = g.bands
    cdef const pixel_t* row = src + top
    cdef double acc
    for b in range(bands):
        acc = 0.0
        for j in range(4):
            acc += cy[j] * (cx[0] * row[j * cols] + cx[1] * row[j * cols + 1] + cx[2] * row[j * cols + 2]
                            + cx[3] * row[j * cols + 3])
        store(dst, acc)
        row += plane
        dst += dplane
    return True


cdef inline double bilinear_weight(double t) noexcept nogil:
    t = fabs(t)
    return 1.0 - t if t <= 1.0 else 0.0


cdef inline double cubic_weight(double t) noexcept nogil:
    # GWKCubic: Keys kernel with a = -0.5.
    t = fabs(t)
    if t <= 1.0:
        return t * t * (1.5 * t - 2.5) + 1.0
    if t <= 2.0:
        return t * (t * (-0.5 * t + 2.5) - 4.0) + 2.0
    return 0.0


# Bands the filtered sampler accumulates together in one pass over the taps (a chunk; more bands take more passes).
cdef enum:
    FILTER_BAND_CHUNK = 4


cdef inline bint sample_filtered(const pixel_t* src, const Grid* g, double x, double y, const Filter* f,
                                 pixel_t* dst, Py_ssize_t dplane) noexcept nogil:
    """GWKResample: separable kernel, stretched by 1/scale on a downsampled axis, renormalised over valid taps.

    One pass over the taps gives the weight actually available (masked taps drop out) and the weighted sums of up
    to FILTER_BAND_CHUNK bands, where GDAL makes a pass for the weight and one per band: each tap's mask byte and
    weight are read once.  Every sum adds the same terms in the same order as GDAL's passes (a row's taps left to
    right, then the rows top to bottom, rows of zero weight left out of the bands' sums), so the values are the same
    to the bit (bench/bench_side_by_side.py's DEM rows measured the gain)."""
    if not centre_present(g, x, y):
        return False
    cdef Py_ssize_t ix = <Py_ssize_t>ffloor(x - 0.5)
    cdef Py_ssize_t iy = <Py_ssize_t>ffloor(y - 0.5)
    cdef double deltax = x - 0.5 - ix
    cdef double deltay = y - 0.5 - iy
    cdef int jmin = f.yinit, jmax = f.yradius, imin = f.xinit, imax = f.xradius
    if iy + jmin < 0:
        jmin = <int>(-iy)
    if iy + jmax >= g.rows:
        jmax = <int>(g.rows - iy - 1)
    if ix + imin < 0:
        imin = <int>(-ix)
    if ix + imax >= g.cols:
        imax = <int>(g.cols - ix - 1)
    cdef int i, j
    cdef double t
    for i in range(imin, imax + 1):
        t = (i - deltax) * f.xscale if f.xscale < 1.0 else i - deltax
        f.xweights[i - imin] = cubic_weight(t) if f.cubic else bilinear_weight(t)
    for j in range(jmin, jmax + 1):
        t = (j - deltay) * f.yscale if f.yscale < 1.0 else j - deltay
        f.yweights[j - jmin] = cubic_weight(t) if f.cubic else bilinear_weight(t)
    # The taps the kernel's ends give zero weight are left out (the stretched bilinear's 2 / scale + 1 taps a side
    # hold about 2 / scale of weight): a row of zero weight adds 0 x its weight sum, and a column of zero weight
    # adds 0 x a pixel value, exactly nothing when that value is finite (0 x NaN or Inf is NaN, which the sum must
    # then carry, as GDAL's does; the read stage masks NaN, so exports always leave them out).
    cdef int first_i = 0, last_i = imax - imin, first_j = 0, last_j = jmax - jmin
    while first_j < last_j and f.yweights[first_j] == 0.0:
        first_j += 1
    while last_j > first_j and f.yweights[last_j] == 0.0:
        last_j -= 1
    if f.finite:
        while first_i < last_i and f.xweights[first_i] == 0.0:
            first_i += 1
        while last_i > first_i and f.xweights[last_i] == 0.0:
            last_i -= 1
    # Locals, not *g or *f, in the loops: a store through dst may alias them and force reloads.
    cdef Py_ssize_t cols = g.cols, plane = g.plane
    cdef const unsigned char* valid = g.valid
    cdef const double* xweights = f.xweights + first_i
    cdef const double* yweights = f.yweights + first_j
    imax = imin + last_i
    imin += first_i
    jmax = jmin + last_j
    jmin += first_j
    cdef double total = 0.0
    if g.bands == 1:
        return filtered_one_band(src + iy * cols + ix, valid + iy * cols + ix if valid != NULL else NULL, cols,
                                 imin, imax, jmin, jmax, xweights, yweights, dst)
    cdef int first = 0, count
    while first < g.bands:
        count = min(<int>FILTER_BAND_CHUNK, g.bands - first)
        if not filtered_bands(src + first * plane + iy * cols + ix,
                              valid + iy * cols + ix if valid != NULL else NULL, cols, plane, count, imin, imax,
                              jmin, jmax, xweights, yweights, first == 0, &total, dst + first * dplane, dplane):
            return False
        first += count
    return True


cdef inline bint filtered_one_band(const pixel_t* p, const unsigned char* valid, Py_ssize_t cols, int imin, int imax,
                                   int jmin, int jmax, const double* xweights, const double* yweights,
                                   pixel_t* dst) noexcept nogil:
    """sample_filtered of a one-band source; ``p`` and ``valid`` point at the tap (0, 0)."""
    cdef double total = 0.0, acc = 0.0, wy, wx, wrow, vrow
    cdef Py_ssize_t row
    cdef int i, j
    for j in range(jmin, jmax + 1):
        wy = yweights[j - jmin]
        row = j * cols
        wrow = 0.0
        vrow = 0.0
        for i in range(imin, imax + 1):
            if valid == NULL or valid[row + i]:
                wx = xweights[i - imin]
                wrow += wx
                vrow += p[row + i] * wx
        total += wrow * wy
        if wy != 0.0:
            acc += vrow * wy
    if total < 0.000001:
        return False
    if total < 0.99999 or total > 1.00001:
        acc /= total
    store(dst, acc)
    return True


cdef inline bint filtered_bands(const pixel_t* p, const unsigned char* valid, Py_ssize_t cols, Py_ssize_t plane,
                                int count, int imin, int imax, int jmin, int jmax, const double* xweights,
                                const double* yweights, bint first, double* total, pixel_t* dst,
                                Py_ssize_t dplane) noexcept nogil:
    """sample_filtered of ``count`` <= FILTER_BAND_CHUNK bands from ``p`` (band planes ``plane`` apart) into ``dst``;
    the first chunk also sums the weight available into ``total``, which every chunk then divides by."""
    cdef double acc[FILTER_BAND_CHUNK]
    cdef double vrow[FILTER_BAND_CHUNK]
    cdef double wy, wx, wrow, v0, v1, v2, v3
    cdef const pixel_t* q
    cdef Py_ssize_t row
    cdef int i, j, k
    for k in range(count):
        acc[k] = 0.0
    for j in range(jmin, jmax + 1):
        wy = yweights[j - jmin]
        row = j * cols
        wrow = 0.0
        for k in range(count):
            vrow[k] = 0.0
        if count == FILTER_BAND_CHUNK:
            # A full chunk (4-band imagery) with its sums in registers: a loop over k of a count known only at run
            # time keeps them in memory, and this is the kernel's innermost loop.  Same terms, same order.
            v0 = v1 = v2 = v3 = 0.0
            for i in range(imin, imax + 1):
                if valid == NULL or valid[row + i]:
                    wx = xweights[i - imin]
                    wrow += wx
                    q = p + row + i
                    v0 += q[0] * wx
                    v1 += q[plane] * wx
                    v2 += q[2 * plane] * wx
                    v3 += q[3 * plane] * wx
            vrow[0] = v0
            vrow[1] = v1
            vrow[2] = v2
            vrow[3] = v3
        else:
            for i in range(imin, imax + 1):
                if valid == NULL or valid[row + i]:
                    wx = xweights[i - imin]
                    wrow += wx
                    for k in range(count):
                        vrow[k] += p[k * plane + row + i] * wx
        if first:
            total[0] += wrow * wy
        if wy != 0.0:
            for k in range(count):
                acc[k] += vrow[k] * wy
    if first and total[0] < 0.000001:
        return False
    for k in range(count):
        if total[0] < 0.99999 or total[0] > 1.00001:
            acc[k] /= total[0]
        store(&dst[k * dplane], acc[k])
    return True
