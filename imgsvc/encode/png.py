"""Our own PNG writer, because PNG encoding is most of a PNG request's time (bench/bench_stages.py measures the share).

Measured in ``bench/bench_encode.py`` against Pillow's default (zlib level 6, per-row adaptive over all five
filters): on 1024 x 1024 RGB imagery Pillow takes ~200 ms; this writer takes ~15-25 ms for output 1-10 % larger.
Where the time goes and what we chose:

* Filtering, in numpy: per row, Sub, Up or Average, whichever has the smallest sum of |residual| (libpng's
  heuristic).  Paeth, which Pillow also tries, costs more in numpy than all the rest together and rarely wins on
  imagery; None never wins on imagery.  Palette images are not filtered (filters do not help indices).
* Deflate: ISA-L (the ``isal`` package) at its level 1, about 4x faster than libdeflate and 8x faster than zlib at
  their fastest levels, for sizes within a few percent of theirs.  Numpy, ISA-L and libdeflate release the GIL.
* Except for the layouts that repeat bytes within each pixel: gray repeated into RGB(A) (a 1-band source as
  png32, or as png24 without masked pixels; ``g g g a`` per pixel after filtering, whatever the filter) and gray +
  alpha (a masked 1-band source as png or jpgpng).  ISA-L's match finder keeps one candidate per hash and misses
  the multi-pixel matches zlib's hash chains find there: on stretched DEMs it gave 1.3-1.6x Pillow's size.  These
  layouts go to libdeflate (the ``deflate`` package) instead, level 3 for gray as RGB(A) and 2 for gray + alpha:
  1.05-1.15x Pillow's size, 5.5-7x faster than Pillow (for ~2.5x ISA-L's time).  Measured on 1024 x 1024 DEMs
  and a terrain field: zlib-ng 3 is about as good, libdeflate 1-2 give 1.21-1.25x as RGBA, ISA-L 1-3 1.3-1.6x,
  zlib 1 1.5x and zlib 3 1.25x at a third of Pillow's time; fixed Up or Sub filters are no better than adaptive.
  The gray is also filtered once, not three times: ``filtered_gray_as_rgb`` filters the gray and alpha planes and
  interleaves them, the very bytes ``filtered_rows`` gives for the RGB(A) image, in half its time.

``level`` keeps zlib's 0..9 scale so a service setting reads as usual: 0 stores without compression, 1..3 are
the fast levels, ISA-L's levels 1..3 (1 measured best, level 2 is sometimes larger) or, whichever of them is asked
for, libdeflate at the level above for the repetitive layouts; 4..9 use zlib at that level for those who prefer
bytes to milliseconds.
"""
from __future__ import annotations

import struct
import zlib

import deflate as libdeflate
import numpy as np
from isal import isal_zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> gray, gray+alpha, RGB, RGBA
PALETTE_COLOUR_TYPE = 3
FILTER_SUB, FILTER_UP, FILTER_AVERAGE = 1, 2, 3
FILTER_CODES = np.array([FILTER_SUB, FILTER_UP, FILTER_AVERAGE], np.uint8)
FAST_LEVELS = range(1, 4)  # ISA-L's levels 1..3, or libdeflate at one of these for the repetitive layouts:
GRAY_AS_RGB_LIBDEFLATE_LEVEL = 3  # (libdeflate's scale; module docstring)
GRAY_ALPHA_LIBDEFLATE_LEVEL = 2


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def deflate(raw: np.ndarray, level: int, libdeflate_level: int | None = None) -> bytes:
    """A zlib stream of ``raw``'s bytes (read through the buffer protocol, no copy).  ``libdeflate_level``: what
    the fast levels use instead of ISA-L, for layouts that repeat bytes within each pixel."""
    if level in FAST_LEVELS:
        if libdeflate_level is not None:
            return libdeflate.zlib_compress(raw, libdeflate_level)
        return isal_zlib.compress(raw, level)
    return zlib.compress(raw, level)


def filter_candidates(flat: np.ndarray, bpp: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Sub, Up and Average residuals of every row of ``flat`` (rows, row bytes).  Bytes left of the first pixel
    and above the first row count as 0, as the PNG spec says.  Written with slices and ``out=`` so that no shifted
    copy of the image is made; uint8 arithmetic wraps modulo 256 exactly as PNG filters do."""
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
    return sub, up, average


def row_costs(candidates: tuple[np.ndarray, ...]) -> np.ndarray:
    """(candidates, rows) uint32: each row's sum of |residual| as signed bytes (libpng's heuristic)."""
    costs = np.empty((len(candidates), candidates[0].shape[0]), np.uint32)
    magnitude = np.empty_like(candidates[0])
    for index, residual in enumerate(candidates):
        # |r| of the signed byte; abs(-128) stays -128 as int8, which read back as uint8 is the right 128
        np.abs(residual.view(np.int8), out=magnitude.view(np.int8))
        np.add.reduce(magnitude, axis=1, dtype=np.uint32, out=costs[index])
    return costs


def chosen_residuals(candidates: tuple[np.ndarray, ...], best: np.ndarray, out: np.ndarray) -> None:
    """Write into ``out`` (rows, row bytes) each row's residuals under filter ``best[row]`` (an index into
    ``candidates``)."""
    out[...] = candidates[0]
    for index in range(1, len(candidates)):
        chosen = best == index
        out[chosen] = candidates[index][chosen]


def filtered_rows(flat: np.ndarray, bpp: int) -> np.ndarray:
    """(rows, 1 + row bytes): each row prefixed by its filter type and filtered by whichever of Sub, Up, Average
    has the smallest sum of |residual| as signed bytes."""
    rows, width = flat.shape
    candidates = filter_candidates(flat, bpp)
    best = row_costs(candidates).argmin(axis=0)
    out = np.empty((rows, width + 1), np.uint8)
    out[:, 0] = FILTER_CODES[best]
    chosen_residuals(candidates, best, out[:, 1:])
    return out


def filtered_gray_as_rgb(gray: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """What ``filtered_rows`` gives for the RGB (``alpha`` None) or RGBA image whose R, G and B are ``gray``, both
    (rows, cols) uint8, without making that image or filtering it three times.  PNG filters work per byte with the
    left neighbour one pixel back, so each channel is filtered as its own plane (bpp 1), and a row's cost in the
    interleaved image is 3 x its gray cost + its alpha cost: the same filter wins, and the same bytes come out."""
    rows, cols = gray.shape
    channels = 3 if alpha is None else 4
    gray_candidates = filter_candidates(gray, 1)
    costs = 3 * row_costs(gray_candidates)
    if alpha is not None:
        # An opaque alpha plane (every pixel valid) is constant: below the first row, every row has the same
        # residuals under each filter, so two rows tell them all (saves a tenth of the encode).
        constant = rows > 2 and alpha.min() == alpha.max()
        alpha_candidates = filter_candidates(alpha[:2] if constant else alpha, 1)
        alpha_costs = row_costs(alpha_candidates)
        costs += alpha_costs[:, np.minimum(np.arange(rows), 1)] if constant else alpha_costs
    best = costs.argmin(axis=0)
    out = np.empty((rows, 1 + cols * channels), np.uint8)
    out[:, 0] = FILTER_CODES[best]
    pixels = out[:, 1:].reshape(rows, cols, channels)
    residual = np.empty_like(gray)
    chosen_residuals(gray_candidates, best, residual)
    for channel in range(3):  # one plain strided copy per channel: 3x faster than one broadcasting copy
        pixels[..., channel] = residual
    if alpha is not None:
        if constant:
            by_filter = np.stack(alpha_candidates)  # (filters, 2, cols)
            pixels[0, :, 3] = by_filter[best[0], 0]
            pixels[1:, :, 3] = by_filter[best[1:], 1]
        else:
            chosen_residuals(alpha_candidates, best, residual)
            pixels[..., 3] = residual
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
    raw = filtered_rows(flat, channels)
    gray_alpha = GRAY_ALPHA_LIBDEFLATE_LEVEL if channels == 2 else None
    parts += [chunk(b"IDAT", deflate(raw, level, gray_alpha)), chunk(b"IEND", b"")]
    return b"".join(parts)


def write_gray_as_rgb(gray: np.ndarray, alpha: np.ndarray | None, level: int) -> bytes:
    """PNG RGB (``alpha`` None) or RGBA of (rows, cols) uint8 ``gray`` repeated into R, G and B, with (rows, cols)
    uint8 ``alpha``: the same image as ``write`` of the interleaved pixels, made without interleaving them first
    and compressed with the repetitive layout in mind (module docstring)."""
    gray = np.ascontiguousarray(gray)
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha)
    rows, cols = gray.shape
    raw = filtered_gray_as_rgb(gray, alpha)
    return b"".join([SIGNATURE, header(cols, rows, COLOUR_TYPE[3 if alpha is None else 4]),
                     chunk(b"IDAT", deflate(raw, level, GRAY_AS_RGB_LIBDEFLATE_LEVEL)), chunk(b"IEND", b"")])


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
