"""``lerc``: one LERC blob per band, concatenated in band order (docs/protocol.md §2.4).

LERC2 (``lercVersion=2``) is written by Esri's library from the ``lerc`` package, but through its C entry
``lerc_encodeForVersion`` rather than ``lerc.encode``: ``lerc.encode`` always writes codec v6 (2.6), which ArcGIS
JS 3.x refuses ("unsupported lerc version").  We write codec v3 (2.3): it has the checksum and the true data type,
every LERC2 reader takes it, and measured sizes differ from v4/v5 by a few bytes; only lossless float (tolerance 0)
compresses better in v6, which 3.x clients cannot read.  Each band's mask is the block's mask, less NaN pixels of
float bands (older codecs cannot hold NaN); Esri's encoder writes "same mask as the previous band" for repeats.

LERC1 (``lercVersion=1``) is ours (``ext/lerc1.pyx``, the compiled ``imgsvc._kernels.lerc1``): float32 only, the
mask in band 0's blob only, later bands carrying their z part alone.  Every pixel type is converted to float32, as
ArcGIS does for LERC1, so U32/S32 beyond 2**24 and F64 lose precision (Esri: "Lerc1 is unsafe for int32/double").
NaN pixels are stored as raw floats.  Esri's LERC1 reader takes at most 20000 pixels a side.

``compressionTolerance`` is maxZError.  For integer types a tolerance below 0.5 is lossless either way, so it is
raised to 0.5 (integers then round-trip exactly); above it, it is floored to a whole number so decoded values stay
integers (what Esri's LERC2 encoder does too).
"""
from __future__ import annotations

import ctypes
import math
import sys

import lerc
import numpy as np

from imgsvc._kernels import lerc1 as _lerc1
from imgsvc.block import ImageBlock
from imgsvc.encode.types import OCTET_STREAM, Encoded, EncodeOptions, FileType
from imgsvc.errors import ErrorKind, ImgsvcError, unsupported

LERC = FileType(OCTET_STREAM, "lerc")
LERC2_CODEC_VERSION = 3
LERC_ERRORS = {1: "failed", 2: "wrong parameter", 3: "buffer too small", 4: "NaN in data", 5: "has noData"}
BUFFER_TOO_SMALL = 3

# A handle of our own on the package's shared library, so typing its functions cannot disturb the package's
# own calls.  ctypes.CDLL releases the GIL for the duration of every call.
_library = ctypes.CDLL(lerc.lercDll._name)
_encode_for_version = _library.lerc_encodeForVersion
_encode_for_version.restype = ctypes.c_uint
_encode_for_version.argtypes = [
    ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
    ctypes.c_int, ctypes.c_void_p, ctypes.c_double, ctypes.c_void_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint)]
_size_for_version = _library.lerc_computeCompressedSizeForVersion
_size_for_version.restype = ctypes.c_uint
_size_for_version.argtypes = [
    ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
    ctypes.c_int, ctypes.c_void_p, ctypes.c_double, ctypes.POINTER(ctypes.c_uint)]


def max_z_error(tolerance: float, dtype: np.dtype) -> float:
    if dtype.kind in "iu":
        return max(0.5, math.floor(tolerance))
    return float(tolerance)


def band_masks(block: ImageBlock) -> np.ndarray | None:
    """(masks, rows, cols) uint8 validity for lerc: None when all valid, one mask for all bands, or one per band
    when NaN pixels make bands differ."""
    data, valid = block.data, block.valid
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            return np.ascontiguousarray(finite & valid, dtype=np.uint8)
    if valid.all():
        return None
    return np.ascontiguousarray(valid[None], dtype=np.uint8)


def rle_bound(pixels: int) -> int:
    packed = (pixels + 7) // 8
    return packed + 2 + 2 * (packed // 32767 + 1)


def encode_lerc2(block: ImageBlock, options: EncodeOptions) -> bytes:
    data = np.ascontiguousarray(block.data)
    bands, rows, cols = data.shape
    data_type = lerc.getLercDatatype(data.dtype)
    masks = band_masks(block)
    tolerance = max_z_error(options.tolerance, data.dtype)
    args = (data.ctypes.data, LERC2_CODEC_VERSION, data_type, 1, cols, rows, bands,
            0 if masks is None else masks.shape[0], None if masks is None else masks.ctypes.data, tolerance)
    # LERC2 stores a band raw when that is smaller, so a band never needs more than its raw bytes, its mask and a
    # header; the exact size is asked for only if that bound ever proves short.
    capacity = bands * (256 + rle_bound(rows * cols)) + data.nbytes
    for attempt in range(2):
        out = ctypes.create_string_buffer(capacity)
        written = ctypes.c_uint()
        status = _encode_for_version(*args, out, capacity, ctypes.byref(written))
        if status == BUFFER_TOO_SMALL and attempt == 0:
            needed = ctypes.c_uint()
            status = _size_for_version(*args, ctypes.byref(needed))
            capacity = needed.value
            if status == 0:
                continue
        if status:
            raise ImgsvcError(ErrorKind.INTERNAL, f"LERC2 encoding of {bands} band(s) of {data.dtype.name} "
                              f"failed: {LERC_ERRORS.get(status, status)}.")
        return out.raw[: written.value]
    raise AssertionError("unreachable")


def encode_lerc1(block: ImageBlock, options: EncodeOptions) -> bytes:
    rows, cols = block.shape
    if rows > _lerc1.MAX_SIDE or cols > _lerc1.MAX_SIDE:
        raise unsupported(f"format=lerc with lercVersion=1 holds at most {_lerc1.MAX_SIDE} pixels a side, not "
                          f"{cols} x {rows}; use lercVersion=2.")
    if sys.byteorder != "little":
        raise unsupported("format=lerc with lercVersion=1 is only written on little-endian hosts.")
    valid = np.ascontiguousarray(block.valid, dtype=np.uint8)
    tolerance = max_z_error(options.tolerance, block.data.dtype)
    blobs = []
    for band in range(block.band_count):
        z = np.ascontiguousarray(block.data[band], dtype=np.float32)
        blobs.append(_lerc1.encode_band(z, valid, tolerance, band == 0))
    return b"".join(blobs)


def encode_lerc(block: ImageBlock, options: EncodeOptions) -> Encoded:
    encoder = encode_lerc1 if options.lerc_version == 1 else encode_lerc2
    return LERC.encoded(encoder(block, options))
