# cython: language_level=3
"""LERC1 ("CntZImage") encoder for one float32 band (docs/protocol.md §2.4).

The layout follows the one open LERC1 encoder, GDAL's ``frmts/mrf/LERCV1/Lerc1Image.cpp`` (Apache-2.0), so that
Esri's decoders (``Lerc1Decode/CntZImage.cpp``, ArcGIS JS ``LercCodec.js``) read what we write:

    "CntZImage " | int32 version 11 | int32 type 8 | int32 height | int32 width | float64 maxZError
    [mask part, band 0 only]  int32 0 | int32 0 | int32 numBytes | float32 maxCount | RLE bitmask
    z part                    int32 tilesVert | int32 tilesHori | int32 numBytes | float32 maxValue | tiles

Each tile is a flag byte (low 6 bits: 0 raw floats, 1 bit-stuffed, 2 all zero, 3 constant; high 2 bits: how many
bytes hold zMin) followed by the valid pixels' data.  Quantisation is q = (z - zMin) / (2 maxZError) + 0.5,
truncated, so the decoded zMin + 2 maxZError q is within maxZError of z.  The tiling is the smallest of the whole
image and of square tiles of 8, 11, 15, 20, 32 and 64 pixels, as GDAL and Esri choose it.

Every check is done by the Python caller (``imgsvc.encode.lercblob``) before ``encode_band``; the loops run without
the GIL and cannot fail.  Multi-byte fields are written in host order, which the caller checks is little-endian.
"""
from libc.math cimport floorf, isfinite
from libc.stdint cimport int32_t, uint8_t, uint32_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport free, malloc

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize

cdef extern from "float.h":
    float FLT_MAX

cdef double MAXQ = 16777216.0  # largest quantised value; beyond it a tile is stored raw (as in GDAL)
cdef int MAX_RUN = 32767
cdef int MIN_RUN = 5
cdef int END_OF_RLE = -32768
cdef int HEADER_BYTES = 10 + 4 * 4 + 8
cdef int PART_HEADER_BYTES = 3 * 4 + 4
cdef int TILE_WIDTHS[6]
TILE_WIDTHS[:] = [8, 11, 15, 20, 32, 64]  # square tile sizes tried, as GDAL and Esri do

MAX_SIDE = 20000  # Esri's CntZImage reader refuses wider or taller images


cdef struct TileStats:
    float zmin
    float zmax
    long long n_valid
    long long n_finite


cdef inline int count_width(long long k) noexcept nogil:
    """Bytes of a pixel count in a bit-stuffed tile: 1, 2 or 4."""
    return 1 if k <= 0xff else (2 if k <= 0xffff else 4)


cdef inline uint8_t width_code(int n) noexcept nogil:
    """The two high bits that say a field is 1, 2 or 4 bytes wide (0x80, 0x40, 0x00)."""
    return 0x80 if n == 1 else (0x40 if n == 2 else 0x00)


cdef inline int bit_count(unsigned int v) noexcept nogil:
    """Bits needed for v > 0."""
    cdef int n = 0
    while v:
        n += 1
        v >>= 1
    return n


cdef inline int float_width(float z) noexcept nogil:
    """1 or 2 when zMin is a small integer (stored as int8 / int16), else 4 (float32)."""
    if -128.0 <= z <= 127.0 and <float>(<signed char>z) == z:
        return 1
    if -32768.0 <= z <= 32767.0 and <float>(<short>z) == z:
        return 2
    return 4


cdef inline uint8_t* put_int32(uint8_t* p, int32_t v) noexcept nogil:
    memcpy(p, &v, 4)
    return p + 4


cdef inline uint8_t* put_float(uint8_t* p, float z, int n) noexcept nogil:
    cdef signed char c
    cdef short s
    if n == 1:
        c = <signed char>z
        memcpy(p, &c, 1)
    elif n == 2:
        s = <short>z
        memcpy(p, &s, 2)
    else:
        memcpy(p, &z, 4)
    return p + n


# ------------------------------------------------------------------------------------------------------- mask (RLE)

cdef inline int run_length(const uint8_t* s, long long left) noexcept nogil:
    cdef int limit = MAX_RUN if left > MAX_RUN else <int>left
    cdef int i
    for i in range(1, limit):
        if s[i] != s[0]:
            return i
    return limit


cdef long long rle(const uint8_t* src, long long size, uint8_t* dst) noexcept nogil:
    """RLE of the packed mask: int16 count > 0 then that many literal bytes, or < 0 then one byte repeated -count
    times, ended by -32768.  Returns the byte count; with ``dst`` NULL only counts."""
    cdef long long out = 0
    cdef long long literal_start = 0
    cdef int literal = 0
    cdef int run
    cdef short count
    cdef long long i = 0
    while i < size:
        run = run_length(src + i, size - i)
        if run < MIN_RUN:
            if literal == 0:
                literal_start = i
            literal += 1
            i += 1
            if literal == MAX_RUN:
                out = flush_literal(src, literal_start, literal, dst, out)
                literal = 0
        else:
            if literal:
                out = flush_literal(src, literal_start, literal, dst, out)
                literal = 0
            if dst != NULL:
                count = <short>(-run)
                memcpy(dst + out, &count, 2)
                dst[out + 2] = src[i]
            out += 3
            i += run
    if literal:
        out = flush_literal(src, literal_start, literal, dst, out)
    if dst != NULL:
        count = <short>END_OF_RLE
        memcpy(dst + out, &count, 2)
    return out + 2


cdef inline long long flush_literal(const uint8_t* src, long long start, int n, uint8_t* dst,
                                    long long out) noexcept nogil:
    cdef short count = <short>n
    if dst != NULL:
        memcpy(dst + out, &count, 2)
        memcpy(dst + out + 2, src + start, n)
    return out + 2 + n


# ----------------------------------------------------------------------------------------------------------- tiles

cdef void tile_stats(const float* z, const uint8_t* valid, Py_ssize_t cols, int r0, int r1, int c0, int c1,
                     TileStats* st) noexcept nogil:
    cdef int r, c
    cdef float v
    cdef Py_ssize_t k
    st.zmin = FLT_MAX
    st.zmax = -FLT_MAX
    st.n_valid = 0
    st.n_finite = 0
    for r in range(r0, r1):
        for c in range(c0, c1):
            k = r * cols + c
            if valid[k]:
                st.n_valid += 1
                v = z[k]
                if isfinite(v):
                    st.n_finite += 1
                    if v < st.zmin:
                        st.zmin = v
                    if v > st.zmax:
                        st.zmax = v
    if st.n_finite == 0:
        st.zmin = 0
        st.zmax = 0


cdef inline bint stored_raw(TileStats* st, float zmin, double max_z_error) noexcept nogil:
    return (max_z_error == 0 or st.n_finite < st.n_valid
            or (<double>st.zmax - zmin) / (2 * max_z_error) > MAXQ)


cdef long long quantised_size(TileStats* st, float zmin, double max_z_error) noexcept nogil:
    """Bytes of a tile with this zMin (GDAL ``numBytesZTile``)."""
    cdef unsigned int max_elem
    cdef long long n
    if st.n_valid == 0 or (st.n_finite == st.n_valid and zmin == 0 and st.zmax == 0):
        return 1
    if stored_raw(st, zmin, max_z_error):
        return 1 + st.n_valid * 4
    max_elem = <unsigned int>((<double>st.zmax - zmin) / (2 * max_z_error) + 0.5)
    n = 1 + float_width(zmin)
    if max_elem == 0:
        return n
    return n + 1 + count_width(st.n_valid) + (st.n_valid * bit_count(max_elem) + 7) // 8


cdef long long tile_size(TileStats* st, double max_z_error, float* zmin_used) noexcept nogil:
    """Bytes of the tile, choosing zMin: the tile minimum, or - when it saves bytes - the minimum moved up by
    almost maxZError (or the integer below that), which still decodes within maxZError."""
    cdef long long best = quantised_size(st, st.zmin, max_z_error)
    cdef long long size, size_int
    cdef float moved
    zmin_used[0] = st.zmin
    if st.n_valid == 0 or max_z_error == 0 or st.n_finite < st.n_valid:
        return best
    moved = <float>(st.zmin + 0.999999 * max_z_error)
    if moved > st.zmax:
        return best
    size = quantised_size(st, moved, max_z_error)
    if st.zmin < floorf(moved):
        size_int = quantised_size(st, floorf(moved), max_z_error)
        if size_int < size:
            moved = floorf(moved)
            size = size_int
    if size < best:
        zmin_used[0] = moved
        best = size
    return best


cdef uint8_t* write_tile(uint8_t* p, const float* z, const uint8_t* valid, Py_ssize_t cols,
                         int r0, int r1, int c0, int c1, TileStats* st, float zmin,
                         double max_z_error) noexcept nogil:
    cdef int r, c, n, bits, free_bits
    cdef Py_ssize_t k
    cdef unsigned int max_elem, value, acc
    cdef double scale
    cdef int32_t count
    if st.n_valid == 0 or (st.n_finite == st.n_valid and zmin == 0 and st.zmax == 0):
        p[0] = 2  # all valid pixels are 0
        return p + 1
    if stored_raw(st, zmin, max_z_error):
        p[0] = 0
        p += 1
        for r in range(r0, r1):
            for c in range(c0, c1):
                k = r * cols + c
                if valid[k]:
                    memcpy(p, &z[k], 4)
                    p += 4
        return p
    scale = 0.5 / max_z_error
    max_elem = <unsigned int>((<double>st.zmax - zmin) * scale + 0.5)
    n = float_width(zmin)
    p[0] = (3 if max_elem == 0 else 1) | width_code(n)
    p = put_float(p + 1, zmin, n)
    if max_elem == 0:
        return p
    bits = bit_count(max_elem)
    n = count_width(st.n_valid)
    p[0] = <uint8_t>(bits | width_code(n))
    count = <int32_t>st.n_valid
    memcpy(p + 1, &count, n)  # little-endian: the low n bytes
    p += 1 + n
    # Values are packed from the high end of 32-bit words, each word stored in host (little-endian) order; the
    # last word keeps only its used high bytes, as Esri's BitStuffer reads it.
    acc = 0
    free_bits = 32
    for r in range(r0, r1):
        for c in range(c0, c1):
            k = r * cols + c
            if valid[k]:
                value = <unsigned int>((<double>z[k] - zmin) * scale + 0.5)
                if free_bits >= bits:
                    acc |= value << (free_bits - bits)
                    free_bits -= bits
                else:
                    acc |= value >> (bits - free_bits)
                    memcpy(p, &acc, 4)
                    p += 4
                    free_bits += 32 - bits
                    acc = value << free_bits
    n = 4
    while free_bits >= 8:
        acc >>= 8
        free_bits -= 8
        n -= 1
    memcpy(p, &acc, n)
    return p + n


cdef long long z_tiles(const float* z, const uint8_t* valid, int rows, int cols, int tiles_v, int tiles_h,
                       double max_z_error, uint8_t* out, float* max_value, bint* any_raw) noexcept nogil:
    """Bytes of the z tiles for this tiling, written to ``out`` unless it is NULL.  Tiles are rows // tiles_v by
    cols // tiles_h; a remainder makes one more, smaller, tile row or column.  ``any_raw`` tells whether some
    tile stores raw floats."""
    cdef int tile_h = rows // tiles_v
    cdef int tile_w = cols // tiles_h
    cdef int r0, c0, r1, c1
    cdef long long total = 0
    cdef TileStats st
    cdef float zmin
    cdef uint8_t* p = out
    max_value[0] = -FLT_MAX
    any_raw[0] = False
    r0 = 0
    while r0 < rows:
        r1 = r0 + tile_h if r0 + tile_h < rows else rows
        c0 = 0
        while c0 < cols:
            c1 = c0 + tile_w if c0 + tile_w < cols else cols
            tile_stats(z, valid, cols, r0, r1, c0, c1, &st)
            if st.zmax > max_value[0]:
                max_value[0] = st.zmax
            total += tile_size(&st, max_z_error, &zmin)
            if st.n_valid and stored_raw(&st, zmin, max_z_error):
                any_raw[0] = True
            if out != NULL:
                p = write_tile(p, z, valid, cols, r0, r1, c0, c1, &st, zmin, max_z_error)
            c0 = c1
        r0 = r1
    return total


cdef long long best_tiling(const float* z, const uint8_t* valid, int rows, int cols, double max_z_error,
                           int* tiles_v, int* tiles_h) noexcept nogil:
    """GDAL ``findTiling``: the whole image, then square tiles of growing size until the size stops falling.

    One difference: a tiling in which some tile must be stored raw (NaN or infinity among its valid pixels, or a
    range beyond 2**24 quanta) is not taken.  Esri's JavaScript LERC1 decoder (LercDecode.js, in ArcGIS JS and
    Cesium) sizes a raw tile from the whole z part, so it reads raw floats only when the image is one tile."""
    cdef float max_value
    cdef bint any_raw
    cdef long long best = z_tiles(z, valid, rows, cols, 1, 1, max_z_error, NULL, &max_value, &any_raw)
    cdef long long size
    cdef int i, nv, nh
    tiles_v[0] = 1
    tiles_h[0] = 1
    for i in range(6):
        nv = rows // TILE_WIDTHS[i]
        nh = cols // TILE_WIDTHS[i]
        if nv * nh < 2:
            break
        size = z_tiles(z, valid, rows, cols, nv, nh, max_z_error, NULL, &max_value, &any_raw)
        if size > best or any_raw:
            break
        if size < best:
            best = size
            tiles_v[0] = nv
            tiles_h[0] = nh
    return best


def encode_band(const float[:, ::1] z, const uint8_t[:, ::1] valid, double max_z_error, bint with_mask):
    """One LERC1 blob of ``z`` (valid: 1 = has data).  ``with_mask`` for band 0; later bands carry the z part
    only and reuse band 0's mask.  The caller has checked shapes, 0 < size <= 20000 and max_z_error >= 0."""
    cdef int rows = z.shape[0]
    cdef int cols = z.shape[1]
    cdef long long n = <long long>rows * cols
    cdef long long mask_bytes = (n + 7) // 8
    cdef const float* zp = &z[0, 0]
    cdef const uint8_t* vp = &valid[0, 0]
    cdef uint8_t* packed = NULL
    cdef long long n_valid = 0, rle_bytes = 0, z_bytes, k, total
    cdef int tiles_v = 1, tiles_h = 1
    cdef float max_value = 0
    cdef bint any_raw
    cdef uint8_t* p
    cdef bytes blob
    with nogil:
        for k in range(n):
            n_valid += vp[k] != 0
        if with_mask and 0 < n_valid < n:
            packed = <uint8_t*>malloc(mask_bytes)
            if packed != NULL:
                memset(packed, 0, mask_bytes)
                for k in range(n):
                    if vp[k]:
                        packed[k >> 3] |= 0x80 >> (k & 7)
                rle_bytes = rle(packed, mask_bytes, NULL)
        z_bytes = best_tiling(zp, vp, rows, cols, max_z_error, &tiles_v, &tiles_h)
    if with_mask and 0 < n_valid < n and packed == NULL:
        raise MemoryError()
    total = HEADER_BYTES + PART_HEADER_BYTES + z_bytes + (PART_HEADER_BYTES + rle_bytes if with_mask else 0)
    blob = PyBytes_FromStringAndSize(NULL, total)
    p = <uint8_t*>PyBytes_AS_STRING(blob)
    with nogil:
        memcpy(p, b"CntZImage ", 10)
        p = put_int32(p + 10, 11)
        p = put_int32(p, 8)
        p = put_int32(p, rows)
        p = put_int32(p, cols)
        memcpy(p, &max_z_error, 8)
        p += 8
        if with_mask:
            p = put_int32(put_int32(p, 0), 0)
            p = put_int32(p, <int32_t>rle_bytes)
            # numBytes 0 means a constant count: maxCount 1 = every pixel valid, 0 = none
            p = put_float(p, 1.0 if n_valid > 0 else 0.0, 4)
            if rle_bytes:
                rle(packed, mask_bytes, p)
                p += rle_bytes
            free(packed)
        p = put_int32(put_int32(p, tiles_v), tiles_h)
        p = put_int32(p, <int32_t>z_bytes)
        z_tiles(zp, vp, rows, cols, tiles_v, tiles_h, max_z_error, p + 4, &max_value, &any_raw)
        put_float(p, max_value, 4)
    return blob
