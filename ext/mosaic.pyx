# The mosaic operators (docs/protocol.md §5): each joins one more resampled item's pixels, band by band, to the
# result so far, counting valid pixels only.  Arrays are (bands, rows, cols) C-contiguous with one validity byte per
# pixel shared by the bands.  The validating wrappers are in imgsvc.kernels ("Mosaic operators").

from interpolation cimport pixel_t


def fill_first(pixel_t[:, :, ::1] data, unsigned char[:, ::1] valid, const pixel_t[:, :, ::1] item,
               const unsigned char[:, ::1] item_valid):
    """MT_FIRST: where the result has no data yet and the item has, take the item's pixel.  Returns the pixels still
    without data, so that the caller stops reading items once it is 0."""
    cdef Py_ssize_t b, r, c, empty = 0
    cdef Py_ssize_t bands = data.shape[0], rows = data.shape[1], cols = data.shape[2]
    with nogil:
        for r in range(rows):
            for c in range(cols):
                if valid[r, c]:
                    continue
                if item_valid[r, c]:
                    for b in range(bands):
                        data[b, r, c] = item[b, r, c]
                    valid[r, c] = 1
                else:
                    empty += 1
    return empty


def fill_last(pixel_t[:, :, ::1] data, unsigned char[:, ::1] valid, const pixel_t[:, :, ::1] item,
              const unsigned char[:, ::1] item_valid) -> None:
    """MT_LAST: wherever the item has data it replaces the result's pixel."""
    cdef Py_ssize_t b, r, c
    cdef Py_ssize_t bands = data.shape[0], rows = data.shape[1], cols = data.shape[2]
    with nogil:
        for r in range(rows):
            for c in range(cols):
                if item_valid[r, c]:
                    for b in range(bands):
                        data[b, r, c] = item[b, r, c]
                    valid[r, c] = 1


def keep_extreme(pixel_t[:, :, ::1] data, unsigned char[:, ::1] valid, const pixel_t[:, :, ::1] item,
                 const unsigned char[:, ::1] item_valid, bint largest) -> None:
    """MT_MIN / MT_MAX: band by band, the smaller (larger) of the result's and the item's value where both have
    data, the item's where only it has."""
    cdef Py_ssize_t b, r, c
    cdef Py_ssize_t bands = data.shape[0], rows = data.shape[1], cols = data.shape[2]
    cdef pixel_t value
    with nogil:
        for r in range(rows):
            for c in range(cols):
                if not item_valid[r, c]:
                    continue
                if not valid[r, c]:
                    for b in range(bands):
                        data[b, r, c] = item[b, r, c]
                    valid[r, c] = 1
                    continue
                for b in range(bands):
                    value = item[b, r, c]
                    if (value > data[b, r, c]) if largest else (value < data[b, r, c]):
                        data[b, r, c] = value


def accumulate(double[:, :, ::1] total, double[:, ::1] weight_sum, const pixel_t[:, :, ::1] item,
               const unsigned char[:, ::1] item_valid, const double[:, ::1] weights, double weight) -> None:
    """MT_MEAN / MT_SUM / MT_BLEND: add the item's valid pixels times their weight to ``total`` and the weight to
    ``weight_sum``; the weight is ``weights[r, c]`` when ``weights`` is given, else ``weight``."""
    cdef Py_ssize_t b, r, c
    cdef Py_ssize_t bands = total.shape[0], rows = total.shape[1], cols = total.shape[2]
    cdef bint weighted = weights is not None
    cdef double w = weight
    with nogil:
        for r in range(rows):
            for c in range(cols):
                if not item_valid[r, c]:
                    continue
                if weighted:
                    w = weights[r, c]
                for b in range(bands):
                    total[b, r, c] += <double>item[b, r, c] * w
                weight_sum[r, c] += w


def blend_weights(const double[:, ::1] x, const double[:, ::1] y, double xmin, double ymin, double xmax,
                  double ymax, double least, double[:, ::1] out) -> None:
    """MT_BLEND's weight of each pixel centre (x, y) in an item with bounds (xmin, ymin, xmax, ymax): its distance
    to the nearest edge of the bounds, at least ``least``."""
    cdef Py_ssize_t r, c
    cdef double inside, d
    with nogil:
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                inside = x[r, c] - xmin
                d = xmax - x[r, c]
                if d < inside:
                    inside = d
                d = y[r, c] - ymin
                if d < inside:
                    inside = d
                d = ymax - y[r, c]
                if d < inside:
                    inside = d
                out[r, c] = inside if inside > least else least


def keep_deepest(pixel_t[:, :, ::1] best, double[:, ::1] best_depth, pixel_t[:, :, ::1] runner,
                 double[:, ::1] runner_depth, const pixel_t[:, :, ::1] item, const unsigned char[:, ::1] item_valid,
                 const double[:, ::1] item_depth) -> None:
    """Seamline: per pixel, the two items with data that the pixel lies deepest inside (``*_depth``: how far inside;
    -inf = none yet), the deepest in ``best``.  An item no deeper than the best so far (a tie) stays below it, so
    ties go to the item fed first."""
    cdef Py_ssize_t b, r, c
    cdef Py_ssize_t bands = best.shape[0], rows = best.shape[1], cols = best.shape[2]
    cdef double depth
    with nogil:
        for r in range(rows):
            for c in range(cols):
                if not item_valid[r, c]:
                    continue
                depth = item_depth[r, c]
                if depth > best_depth[r, c]:
                    for b in range(bands):
                        runner[b, r, c] = best[b, r, c]
                        best[b, r, c] = item[b, r, c]
                    runner_depth[r, c] = best_depth[r, c]
                    best_depth[r, c] = depth
                elif depth > runner_depth[r, c]:
                    for b in range(bands):
                        runner[b, r, c] = item[b, r, c]
                    runner_depth[r, c] = depth
