# Reprojection kernels: fill an output grid from a source array through an approximate coordinate transformer.
#
# The public, validating wrapper is imgsvc/kernels.py; everything here trusts its arguments (shapes, dtypes,
# contiguity and lattice consistency are checked there) so the loops run without the GIL and cannot fail.
#
# Coordinates.  The output grid's sample positions (pixel centres, or pixel corners for mode) are mapped to source
# pixel coordinates by an approximate transformer: the exact map is known at the nodes of a lattice of square cells
# (S x S samples, S a power of two); each cell is subdivided 2^level times per side, so its nodes sit every
# S >> level samples, and the map is interpolated between nodes: bilinearly, or, in a cell whose level carries the
# CUBIC_NODES flag, by the tensor product of cubic Lagrange polynomials through 4 consecutive nodes of the cell (the
# interval's neighbours, one-sided at the cell's edges), whose error shrinks 16 times per halving of the step where
# bilinear's shrinks 4 times.  The lattice is refined in Python where the interpolation misses the exact map by more
# than the caller's bound; a cell at step 1 holds the exact map of every sample, which is how points that cannot be
# projected (NaN nodes) reach the kernel: as NaN coordinates.

from libc.math cimport floor, ceil
from libc.stdlib cimport malloc, free

cimport numpy as cnp
import numpy as np

from interpolation cimport (pixel_t, Grid, Filter, store, centre_pixel, sample_bilinear, sample_cubic,
                            sample_filtered)

cnp.import_array()

cdef enum Method:
    M_NEAREST = 0
    M_BILINEAR = 1
    M_CUBIC = 2
    M_FILTERED_BILINEAR = 3
    M_FILTERED_CUBIC = 4

NEAREST = M_NEAREST
BILINEAR = M_BILINEAR
CUBIC = M_CUBIC
FILTERED_BILINEAR = M_FILTERED_BILINEAR
FILTERED_CUBIC = M_FILTERED_CUBIC


# Level flag of a cell interpolated by cubics (it needs 4 nodes a side: level >= 2), and the most nodes a side.
cdef enum:
    C_CUBIC_NODES = 64
    MAX_NODES = 129

CUBIC_NODES = C_CUBIC_NODES
MAX_CELL = MAX_NODES - 1


cdef struct Lattice:
    Py_ssize_t cell        # S, samples per cell side
    Py_ssize_t cell_cols   # cells per lattice row
    Py_ssize_t width       # samples per row
    const signed char* level
    const Py_ssize_t* offset   # first double of each cell's node block in pool
    const double* pool         # per cell: (n, n, 2) source (x, y) with n = 2^level + 1


cdef inline void fill_row(const Lattice* L, Py_ssize_t r, double* xs, double* ys) noexcept nogil:
    """Source coordinates of the samples of lattice row r."""
    cdef Py_ssize_t cell_row = r // L.cell
    cdef Py_ssize_t t = r - cell_row * L.cell
    cdef Py_ssize_t C, c0, c1, n, h, a, b, u0, v, cell
    cdef const double* node
    cdef const double* top
    cdef const double* bottom
    cdef double fy, x0, y0, x1, y1, dx, dy
    cdef signed char lv
    for C in range(L.cell_cols):
        cell = cell_row * L.cell_cols + C
        lv = L.level[cell]
        n = (1 << (lv & ~C_CUBIC_NODES)) + 1
        h = L.cell >> (lv & ~C_CUBIC_NODES)
        node = L.pool + L.offset[cell]
        c0 = C * L.cell
        c1 = min(c0 + L.cell, L.width)
        a = t // h
        if h == 1:
            # Exact nodes at every sample; NaN (unprojectable) stays NaN.
            top = node + a * n * 2
            for v in range(c1 - c0):
                xs[c0 + v] = top[2 * v]
                ys[c0 + v] = top[2 * v + 1]
            continue
        if lv & C_CUBIC_NODES:
            cubic_cell_row(node, n, h, t, c0, c1, xs, ys)
            continue
        fy = <double>(t - a * h) / h
        for b in range(n - 1):
            u0 = c0 + b * h
            if u0 >= c1:
                break
            top = node + (a * n + b) * 2
            bottom = top + n * 2
            x0 = top[0] + fy * (bottom[0] - top[0])
            y0 = top[1] + fy * (bottom[1] - top[1])
            x1 = top[2] + fy * (bottom[2] - top[2])
            y1 = top[3] + fy * (bottom[3] - top[3])
            dx = (x1 - x0) / h
            dy = (y1 - y0) / h
            for v in range(min(h, c1 - u0)):
                xs[u0 + v] = x0 + dx * v
                ys[u0 + v] = y0 + dy * v


cdef inline void lagrange4(double u, double* w) noexcept nogil:
    """Weights of the cubic through nodes 0, 1, 2, 3 at position u."""
    cdef double a = u - 1.0, b = u - 2.0, c = u - 3.0
    w[0] = -(a * b * c) / 6.0
    w[1] = u * b * c / 2.0
    w[2] = -(u * a * c) / 2.0
    w[3] = u * a * b / 6.0


cdef inline void cubic_cell_row(const double* node, Py_ssize_t n, Py_ssize_t h, Py_ssize_t t, Py_ssize_t c0,
                                Py_ssize_t c1, double* xs, double* ys) noexcept nogil:
    """Row t of a cubic cell (n >= 4 nodes a side every h samples) into xs / ys [c0, c1): the node columns are
    interpolated to the row first, then each interval between two of them along the row, from the 4 node columns
    around it (Newton's form of the same cubic)."""
    cdef double colx[MAX_NODES]
    cdef double coly[MAX_NODES]
    cdef double w[4]
    cdef Py_ssize_t a = t // h, j0, b, b0, u0, v, m
    cdef const double* p
    cdef double inv = 1.0 / h, u, f0, d1, d2, d3, g0, e1, e2, e3
    j0 = min(max(a - 1, 0), n - 4)
    lagrange4(<double>(a - j0) + <double>(t - a * h) * inv, w)
    for b in range(n):
        p = node + (j0 * n + b) * 2
        colx[b] = w[0] * p[0] + w[1] * p[2 * n] + w[2] * p[4 * n] + w[3] * p[6 * n]
        coly[b] = w[0] * p[1] + w[1] * p[2 * n + 1] + w[2] * p[4 * n + 1] + w[3] * p[6 * n + 1]
    for b in range(n - 1):
        u0 = c0 + b * h
        if u0 >= c1:
            break
        b0 = min(max(b - 1, 0), n - 4)
        f0 = colx[b0]
        d1 = colx[b0 + 1] - f0
        d2 = 0.5 * (colx[b0 + 2] - 2.0 * colx[b0 + 1] + f0)
        d3 = (colx[b0 + 3] - 3.0 * colx[b0 + 2] + 3.0 * colx[b0 + 1] - f0) / 6.0
        g0 = coly[b0]
        e1 = coly[b0 + 1] - g0
        e2 = 0.5 * (coly[b0 + 2] - 2.0 * coly[b0 + 1] + g0)
        e3 = (coly[b0 + 3] - 3.0 * coly[b0 + 2] + 3.0 * coly[b0 + 1] - g0) / 6.0
        m = min(h, c1 - u0)
        for v in range(m):
            u = <double>(b - b0) + v * inv
            xs[u0 + v] = f0 + u * (d1 + (u - 1.0) * (d2 + (u - 2.0) * d3))
            ys[u0 + v] = g0 + u * (e1 + (u - 1.0) * (e2 + (u - 2.0) * e3))


def warp_centres(const pixel_t[:, :, ::1] source, const unsigned char[:, ::1] source_valid, bint has_valid,
                 const signed char[:, ::1] level, const Py_ssize_t[:, ::1] offset, const double[::1] pool,
                 Py_ssize_t cell, int method, double xscale, double yscale, int xradius, int yradius,
                 bint finite, pixel_t[:, :, ::1] out, unsigned char[:, ::1] out_valid, Py_ssize_t row_start,
                 Py_ssize_t row_stop):
    """Resample `source` at the output pixel centres described by the lattice into rows [row_start, row_stop) of
    `out` / `out_valid` (so that a caller can stop between bands of rows).

    method: NEAREST, BILINEAR or CUBIC (GDAL's 4-sample formulas) or FILTERED_BILINEAR / FILTERED_CUBIC (GDAL's
    general resampler, the kernel widened by 1/scale on a downsampled axis; xradius/yradius are its half-widths in
    source pixels; `finite` says that every valid source pixel is finite, which lets it skip taps of zero weight).
    Output pixels left invalid are not written, so `out` must arrive zeroed.
    """
    cdef Grid g
    g.cols = source.shape[2]
    g.rows = source.shape[1]
    g.plane = g.cols * g.rows
    g.bands = <int>source.shape[0]
    g.valid = &source_valid[0, 0] if has_valid else NULL
    g.xlimit = <double>g.cols
    g.ylimit = <double>g.rows

    cdef Py_ssize_t rows = out.shape[1], cols = out.shape[2]
    if not 0 <= row_start <= row_stop <= rows:
        raise ValueError(f"rows [{row_start}, {row_stop}) are not within the output's {rows}")
    cdef Lattice L
    L.cell = cell
    L.cell_cols = level.shape[1]
    L.width = cols
    L.level = &level[0, 0]
    L.offset = &offset[0, 0]
    L.pool = &pool[0]

    cdef Filter f
    f.xscale = xscale
    f.yscale = yscale
    f.xradius = xradius
    f.yradius = yradius
    f.cubic = method == FILTERED_CUBIC
    f.finite = finite
    # GDAL starts the kernel at ((radius + 1) % 2) - scaled radius: -r for bilinear (radius 1), 1 - r for cubic (2).
    f.xinit = (1 - xradius) if f.cubic else -xradius
    f.yinit = (1 - yradius) if f.cubic else -yradius
    weights = np.empty(2 * (xradius + yradius) + 4, dtype=np.float64)
    cdef double[::1] wv = weights
    f.xweights = &wv[0]
    f.yweights = &wv[2 * xradius + 2]

    cdef double[::1] xs = np.empty(cols, dtype=np.float64)
    cdef double[::1] ys = np.empty(cols, dtype=np.float64)
    cdef Py_ssize_t[::1] offsets = np.empty(cols, dtype=np.intp)

    with nogil:
        centre_rows(&source[0, 0, 0], &g, &f, &L, method, &xs[0], &ys[0], &offsets[0], rows, cols, &out[0, 0, 0],
                    &out_valid[0, 0], row_start, row_stop)


cdef void centre_rows(const pixel_t* src, const Grid* g, const Filter* f, const Lattice* L, int method, double* xs,
                      double* ys, Py_ssize_t* offsets, Py_ssize_t rows, Py_ssize_t cols, pixel_t* dst,
                      unsigned char* dvalid, Py_ssize_t row_start, Py_ssize_t row_stop) noexcept nogil:
    """warp_centres' loops, in a function of their own: the compiler inlines the samplers into a small function but
    gives up inside the large one Cython generates around the buffer arguments."""
    cdef Py_ssize_t r, c, o, dplane = rows * cols
    # One loop per method so that each sampler is inlined into it (no call per pixel through a pointer).
    for r in range(row_start, row_stop):
        fill_row(L, r, xs, ys)
        o = r * cols
        if method == M_NEAREST:
            nearest_row(src, g, xs, ys, offsets, cols, dst + o, dplane, dvalid + o)
        elif method == M_BILINEAR:
            for c in range(cols):
                dvalid[o + c] = sample_bilinear(src, g, xs[c], ys[c], f, dst + o + c, dplane)
        elif method == M_CUBIC:
            for c in range(cols):
                dvalid[o + c] = sample_cubic(src, g, xs[c], ys[c], f, dst + o + c, dplane)
        else:
            for c in range(cols):
                dvalid[o + c] = sample_filtered(src, g, xs[c], ys[c], f, dst + o + c, dplane)


cdef inline void nearest_row(const pixel_t* src, const Grid* g, const double* xs, const double* ys,
                             Py_ssize_t* offsets, Py_ssize_t cols, pixel_t* dst, Py_ssize_t dplane,
                             unsigned char* dvalid) noexcept nogil:
    """One output row of nearest: the source pixel of every sample first, then each band copied in one pass (one
    output plane written at a time)."""
    cdef Py_ssize_t c, k
    cdef int b
    cdef const pixel_t* band
    cdef pixel_t* plane
    for c in range(cols):
        k = centre_pixel(g, xs[c], ys[c])
        offsets[c] = k
        dvalid[c] = k >= 0
    for b in range(g.bands):
        band = src + b * g.plane
        plane = dst + b * dplane
        for c in range(cols):
            k = offsets[c]
            if k >= 0:
                plane[c] = band[k]


def coordinates(const signed char[:, ::1] level, const Py_ssize_t[:, ::1] offset, const double[::1] pool,
                Py_ssize_t cell, double[:, ::1] xs, double[:, ::1] ys):
    """The source coordinates the kernels use at every sample of a lattice, into xs / ys (rows, cols)."""
    cdef Lattice L
    L.cell = cell
    L.cell_cols = level.shape[1]
    L.width = xs.shape[1]
    L.level = &level[0, 0]
    L.offset = &offset[0, 0]
    L.pool = &pool[0]
    cdef Py_ssize_t r
    with nogil:
        for r in range(xs.shape[0]):
            fill_row(&L, r, &xs[r, 0], &ys[r, 0])


def warp_mode(const pixel_t[:, :, ::1] source, const unsigned char[:, ::1] source_valid, bint has_valid,
              const signed char[:, ::1] level, const Py_ssize_t[:, ::1] offset, const double[::1] pool,
              Py_ssize_t cell, pixel_t[:, :, ::1] out, unsigned char[:, ::1] out_valid):
    """Majority of the valid source pixels under each output pixel (GDAL GWKAverageOrMode, GRA_Mode).

    The lattice samples pixel corners ((rows + 1) x (cols + 1)).  An output pixel's source window is the box spanned
    by its top-left and bottom-right corners; every valid source pixel touching it counts once (GDAL 3.10 does not
    weight mode by coverage); ties go to the value that first reached the maximum in row-major order.  Output pixels
    are valid where any valid source pixel lies under them.
    """
    cdef Py_ssize_t src_cols = source.shape[2], src_rows = source.shape[1], plane = src_cols * src_rows
    cdef int bands = <int>source.shape[0]
    cdef const unsigned char* valid = &source_valid[0, 0] if has_valid else NULL
    cdef Py_ssize_t rows = out.shape[1], cols = out.shape[2], dplane = rows * cols
    cdef Lattice L
    L.cell = cell
    L.cell_cols = level.shape[1]
    L.width = cols + 1
    L.level = &level[0, 0]
    L.offset = &offset[0, 0]
    L.pool = &pool[0]

    corners = np.empty((4, cols + 1), dtype=np.float64)
    cdef double[:, ::1] cv = corners
    cdef double* top_x = &cv[0, 0]
    cdef double* top_y = &cv[1, 0]
    cdef double* bottom_x = &cv[2, 0]
    cdef double* bottom_y = &cv[3, 0]

    # The distinct values of one window and their counts: as many slots as the largest window has pixels.
    cdef Py_ssize_t capacity = 1, area, r, c
    with nogil:
        fill_row(&L, 0, top_x, top_y)
        for r in range(rows):
            fill_row(&L, r + 1, bottom_x, bottom_y)
            for c in range(cols):
                area = _window_area(top_x[c], top_y[c], bottom_x[c + 1], bottom_y[c + 1], src_cols, src_rows)
                if area > capacity:
                    capacity = area
            top_x, bottom_x = bottom_x, top_x
            top_y, bottom_y = bottom_y, top_y
    scratch = np.empty((2, capacity), dtype=np.float64)
    cdef double[:, ::1] sv = scratch
    cdef double* values = &sv[0, 0]
    cdef double* weights = &sv[1, 0]
    top_x = &cv[0, 0]
    top_y = &cv[1, 0]
    bottom_x = &cv[2, 0]
    bottom_y = &cv[3, 0]

    cdef const pixel_t* src = &source[0, 0, 0]
    cdef pixel_t* dst = &out[0, 0, 0]
    cdef unsigned char* dvalid = &out_valid[0, 0]
    cdef Py_ssize_t i, j, k, n, best, o
    cdef int b
    cdef double x0, x1, y0, y1, v
    cdef Py_ssize_t ix0, ix1, iy0, iy1
    with nogil:
        fill_row(&L, 0, top_x, top_y)
        for r in range(rows):
            fill_row(&L, r + 1, bottom_x, bottom_y)
            for c in range(cols):
                o = r * cols + c
                x0 = top_x[c]
                y0 = top_y[c]
                x1 = bottom_x[c + 1]
                y1 = bottom_y[c + 1]
                if not _window(x0, y0, x1, y1, src_cols, src_rows, &ix0, &iy0, &ix1, &iy1):
                    continue
                for b in range(bands):
                    n = 0
                    best = -1
                    for j in range(iy0, iy1):
                        for i in range(ix0, ix1):
                            if valid != NULL and not valid[j * src_cols + i]:
                                continue
                            v = <double>src[b * plane + j * src_cols + i]
                            for k in range(n):
                                if values[k] == v:
                                    break
                            else:
                                k = n
                                values[k] = v
                                weights[k] = 0.0
                                n += 1
                            weights[k] += 1.0
                            if best < 0 or weights[k] > weights[best]:
                                best = k
                    if best < 0:
                        break
                    store(&dst[b * dplane + o], values[best])
                else:
                    dvalid[o] = 1
            top_x, bottom_x = bottom_x, top_x
            top_y, bottom_y = bottom_y, top_y


cdef inline bint _window(double x0, double y0, double x1, double y1, Py_ssize_t src_cols, Py_ssize_t src_rows,
                         Py_ssize_t* ix0, Py_ssize_t* iy0, Py_ssize_t* ix1, Py_ssize_t* iy1) noexcept nogil:
    """The source pixels [ix0, ix1) x [iy0, iy1) under the box of two opposite corners; False when the box is NaN or
    misses the source."""
    if not (x0 == x0 and x1 == x1 and y0 == y0 and y1 == y1):
        return False
    if x0 > x1:
        x0, x1 = x1, x0
    if y0 > y1:
        y0, y1 = y1, y0
    if x1 <= 0.0 or y1 <= 0.0 or x0 >= src_cols or y0 >= src_rows:
        return False
    ix0[0] = <Py_ssize_t>floor(x0 + 1e-10) if x0 > 0.0 else 0
    iy0[0] = <Py_ssize_t>floor(y0 + 1e-10) if y0 > 0.0 else 0
    ix1[0] = <Py_ssize_t>ceil(x1 - 1e-10) if x1 < src_cols else src_cols
    iy1[0] = <Py_ssize_t>ceil(y1 - 1e-10) if y1 < src_rows else src_rows
    # A box thinner than a pixel still takes the pixel it sits in.
    if ix0[0] >= ix1[0]:
        ix1[0] = min(ix0[0] + 1, src_cols)
    if iy0[0] >= iy1[0]:
        iy1[0] = min(iy0[0] + 1, src_rows)
    return ix0[0] < ix1[0] and iy0[0] < iy1[0]


cdef inline Py_ssize_t _window_area(double x0, double y0, double x1, double y1, Py_ssize_t src_cols,
                                    Py_ssize_t src_rows) noexcept nogil:
    cdef Py_ssize_t ix0, iy0, ix1, iy1
    if not _window(x0, y0, x1, y1, src_cols, src_rows, &ix0, &iy0, &ix1, &iy1):
        return 0
    return (ix1 - ix0) * (iy1 - iy0)
