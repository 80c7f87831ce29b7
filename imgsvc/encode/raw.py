"""``bip`` / ``bsq``: raw little-endian pixels in the block's own type, then a 1-bit validity mask
(docs/protocol.md §2.3).

No header: the client knows width, height and pixel type from its request.  bsq is band after band, each row-major;
bip is pixel after pixel, each holding its bands in order.  The mask is ceil(W*H/8) bytes, pixel k in byte k >> 3
at bit 7 - (k & 7) (MSB first), 1 = valid; it is always appended, even when every pixel is valid, because Esri's
decoder treats any trailing bytes as the mask and an absent mask is one more case for clients to get wrong.
Masked pixels hold the band's nodata value when the type can hold it, else 0.  U1/U2/U4 never reach here: the
pipeline carries them as U8, one byte per pixel, which is how ArcGIS JS decodes them (docs/decisions.md Q5).
"""
from __future__ import annotations

import numpy as np

from imgsvc.block import ImageBlock
from imgsvc.encode.nodata import filled
from imgsvc.encode.types import OCTET_STREAM, Encoded, EncodeOptions, FileType

BIP = FileType(OCTET_STREAM, "bip")
BSQ = FileType(OCTET_STREAM, "bsq")


def validity_bits(valid: np.ndarray) -> bytes:
    return np.packbits(valid.ravel(), bitorder="big").tobytes()


def little_endian(data: np.ndarray) -> np.ndarray:
    return data.astype(data.dtype.newbyteorder("<"), copy=False)


def encode_bsq(block: ImageBlock, options: EncodeOptions) -> Encoded:
    pixels = little_endian(filled(block))
    return BSQ.encoded(pixels.tobytes(order="C") + validity_bits(block.valid))


def encode_bip(block: ImageBlock, options: EncodeOptions) -> Encoded:
    pixels = little_endian(np.moveaxis(filled(block), 0, -1))
    return BIP.encoded(pixels.tobytes(order="C") + validity_bits(block.valid))
