# Which pixels of a source window hold data, from the pixels in hand (docs/decisions.md "The read stage's mask"):
# some band differs from the nodata value (GDAL's dataset mask for a nodata value) and no band is NaN (never data).
# The validating wrapper is imgsvc.kernels.pixels_valid.

from interpolation cimport pixel_t


def pixels_valid(const pixel_t[:, :, ::1] data, double nodata, bint has_nodata, unsigned char[:, ::1] valid):
    """Write into ``valid`` 1 where some band differs from ``nodata`` (every pixel, without ``has_nodata``) and no
    band is NaN, else 0: one pass over each row of each band, rows in the cache, instead of a boolean array per band
    and test and two reductions across bands."""
    cdef Py_ssize_t bands = data.shape[0], rows = data.shape[1], cols = data.shape[2]
    cdef Py_ssize_t b, r, c
    # The value compared in the band's own type, as GDAL compares it (a nodata value the type cannot hold never
    # gets here: the wrapper sends has_nodata False for it).
    cdef pixel_t missing = <pixel_t>nodata if has_nodata else 0
    cdef pixel_t value
    cdef unsigned char* row
    with nogil:
        for r in range(rows):
            row = &valid[r, 0]
            for c in range(cols):
                row[c] = 0 if has_nodata else 1
            if has_nodata:
                for b in range(bands):
                    for c in range(cols):
                        row[c] |= data[b, r, c] != missing
            if pixel_t is float or pixel_t is double:
                for b in range(bands):
                    for c in range(cols):
                        value = data[b, r, c]
                        row[c] &= value == value
