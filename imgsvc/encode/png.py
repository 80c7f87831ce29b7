"""Our own PNG writer, because PNG encoding is most of a PNG request's time (DESIGN.md).

Measured in ``bench/bench_encode.py`` against Pillow's default (zlib level 6, per-row adaptive over all five
filters): on 1024 x 1024 RGB imagery Pillow takes ~200 ms; this writer takes ~15-25 ms for output 1-10 % larger.
Where the time goes and what we chose:

* Filtering, in numpy: per row, Sub, Up or Average, whichever has the smallest sum of |residual| (libpng's
  heuristic).  Paeth, which Pillow also tries, costs more in numpy than all the rest together and rarely wins on
  imagery; None never wins on imagery.  Palette images are not filtered (filters do not help indices).
* Deflate: ISA-L (the ``isal`` package) at its level 1, about 4x faster than libdeflate and 8x faster than zlib at
  their fastest levels, for sizes within a few percent of theirs.  Both numpy and ISA-L release the GIL.

Known weak spot: one gray band repeated into RGB(A) (a 1-band source as png24/png32) comes out ~1.6x Pillow's
size, because ISA-L's fast match finder misses the longer matches zlib 6 finds across repeated channels (still
~8x faster; libdeflate level 1 would give ~1.25x at half ISA-L's speed, zlib 3 ~1.24x at a third of Pillow's time).

``level`` keeps zlib's 0..9 scale so a service setting reads as usual: 0 stores without compression, 1..3 are
ISA-L's levels (fast; 1 measured best, level 2 is sometimes larger), 4..9 use zlib at that level for those
who prefer bytes to milliseconds.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np
from isal import isal_zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> gray, gray+alpha, RGB, RGBA
PALETTE_COLOUR_TYPE = 3
FILTER_SUB, FILTER_UP, FILTER_AVERAGE = 1, 2, 3
FILTER_CODES = np.array([FILTER_SUB, FILTER_UP, FILTER_AVERAGE], np.uint8)
ISAL_LEVELS = range(1, 4)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def deflate(raw: np.ndarray, level: int) -> bytes:
    """A zlib stream of ``raw``'s bytes (read through the buffer protocol, no copy)."""
    if level in ISAL_LEVELS:
        return isal_zlib.compress(raw, level)
    return zlib.compress(raw, level)


def filtered_rows(flat: np.ndarray, bpp: int) -> np.ndarray:
    """(rows, 1 + row bytes): each row prefixed by its filter type and filtered by whichever of Sub, Up, Average
    has the smallest sum of |residual| as signed bytes.  Bytes left of the first pixel and above the first row
    count as 0, as the PNG spec says.  Written with slices and ``out=`` so that no shifted copy of the image is
    made; uint8 arithmetic wraps modulo 256 exactly as PNG filters do."""
    rows, width = flat.shape
    sub = np.empty_like(flat)
    sub[:, :bpp] = flat[:, :bpp]
    np.subtract(flat[:, bpp:], flat[:, :-bpp], out=sub[:, bpp:])
    up = np.empty_like(flat)
    up[0] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=up[1:])
    # Average predicts floor((left + above) / 2), computed as (l & a) + ((l ^ a) >> 1) so it never leaves uint8.
    average = np.empty_like(flat)
    average[0, :bpp] = 0
    np.right_shift(flat[0, :-bpp], 1, out=average[0, bpp:])
    np.right_shift(flat[:-1, :bpp], 1, out=average[1:, :bpp])
    left, above = flat[1:, :-bpp], flat[:-1, bpp:]
    inner = average[1:, bpp:]
    np.bitwise_and(left, above, out=inner)
    inner += (left ^ above) >> 1
    np.subtract(flat, average, out=average)
    candidates = (sub, up, average)
    costs = np.empty((len(candidates), rows), np.uint32)
    magnitude = np.empty_like(flat)
    for index, residual in enumerate(candidates):
        # |r| of the signed byte; abs(-128) stays -128 as int8, which read back as uint8 is the right 128
        np.abs(residual.view(np.int8), out=magnitude.view(np.int8))
        np.add.reduce(magnitude, axis=1, dtype=np.uint32, out=costs[index])
    best = costs.argmin(axis=0)
    out = np.empty((rows, width + 1), np.uint8)
    out[:, 0] = FILTER_CODES[best]
    out[:, 1:] = sub
    for index in (1, 2):
        chosen = best == index
        out[chosen, 1:] = candidates[index][chosen]
    return out


def header(cols: int, rows: int, colour_type: int) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", cols, rows, 8, colour_type, 0, 0, 0))


def write(pixels: np.ndarray, level: int, transparent_colour: tuple[int, int, int] | None = None) -> bytes:
    """PNG of (rows, cols) gray or (rows, cols, 2|3|4) uint8 pixels; ``transparent_colour`` (RGB only) goes into
    a tRNS chunk."""
    rows, cols = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    flat = np.ascontiguousarray(pixels).reshape(rows, cols * channels)
    parts = [SIGNATURE, header(cols, rows, COLOUR_TYPE[channels])]
    if transparent_colour is not None:
        parts.append(chunk(b"tRNS", struct.pack(">HHH", *transparent_colour)))
    parts += [chunk(b"IDAT", deflate(filtered_rows(flat, channels), level)), chunk(b"IEND", b"")]
    return b"".join(parts)


def write_palette(indices: np.ndarray, palette: np.ndarray, transparent: int | None, level: int) -> bytes:
    """Palette PNG of (rows, cols) uint8 indices into a (n, 3) palette; ``transparent`` is the index whose tRNS
    alpha is 0 (all others are opaque)."""
    rows, cols = indices.shape
    unfiltered = np.zeros((rows, cols + 1), np.uint8)  # filter type 0 on every row
    unfiltered[:, 1:] = indices
    parts = [SIGNATURE, header(cols, rows, PALETTE_COLOUR_TYPE), chunk(b"PLTE", palette.astype(np.uint8).tobytes())]
    if transparent is not None:
        parts.append(chunk(b"tRNS", bytes([255] * transparent + [0])))
    parts += [chunk(b"IDAT", deflate(unfiltered, level)), chunk(b"IEND", b"")]
    return b"".join(parts)
