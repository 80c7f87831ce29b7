"""Output encoders: an ImageBlock in, the bytes of one ArcGIS ``format`` out (docs/protocol.md §2).

One module per format family: ``picture`` (jpgpng png png8 png24 png32 jpg bmp gif; JPEG, BMP and GIF via Pillow,
every PNG via our own writer ``png``),
``geotiff`` (tiff, via rasterio), ``raw`` (bip bsq), ``lercblob`` (lerc 1 and 2), ``kmz``.  Everything here is
in-memory and thread-safe; the heavy work (Pillow, numpy, ISA-L, GDAL, lerc, our LERC1 kernel) runs without the
GIL.  ``FORMATS`` is the one list of formats: the doors, the pages and the gateway's stored files read it.

Media types (docs/decisions.md Q4), declared by each module as the ``FileType`` it writes: image/png,
image/jpeg, image/tiff, image/gif, image/bmp as documented; ``application/octet-stream`` for lerc, bip and bsq, which
have no registered type and which clients sniff or decode by the format they asked for.  ``Encoded.extension``
follows the encoding actually used, so a jpgpng result with transparency is ``png`` and without is ``jpg``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

from imgsvc.block import ImageBlock
from imgsvc.encode import geotiff, kmz, lercblob, picture, raw
from imgsvc.encode.types import DEFAULT_PNG_LEVEL, Encoded, EncodeOptions, FileType
from imgsvc.errors import invalid, unsupported
from imgsvc.pixel_types import NAME_OF_DTYPE

__all__ = ["DEFAULT_FORMAT", "DEFAULT_PNG_LEVEL", "EncodeOptions", "Encoded", "FORMATS", "MEDIA_TYPES",
           "OutputFormat", "encode", "encode_kmz", "validate_options"]

Encoder = Callable[[ImageBlock, EncodeOptions], Encoded]


@dataclasses.dataclass(frozen=True)
class OutputFormat:
    """One exportImage ``format``.  A new format is an encoder module and one line in ``FORMATS`` (and its value in
    the contract's ``Format`` enum, which a test checks)."""

    name: str  # the ArcGIS spelling
    encoder: Encoder
    files: tuple[FileType, ...]  # what its results are (jpgpng gives a JPEG or a PNG)
    aliases: tuple[str, ...] = ()  # other spellings clients send


FORMATS: dict[str, OutputFormat] = {f.name: f for f in (
    OutputFormat("jpgpng", picture.encode_jpgpng, (picture.JPEG, picture.PNG)),
    OutputFormat("png", picture.encode_png, (picture.PNG,)),
    OutputFormat("png8", picture.encode_png8, (picture.PNG,)),
    OutputFormat("png24", picture.encode_png24, (picture.PNG,)),
    OutputFormat("png32", picture.encode_png32, (picture.PNG,)),
    OutputFormat("jpg", picture.encode_jpg, (picture.JPEG,), aliases=("jpeg",)),
    OutputFormat("bmp", picture.encode_bmp, (picture.BMP,)),
    OutputFormat("gif", picture.encode_gif, (picture.GIF,)),
    OutputFormat("tiff", geotiff.encode_tiff, (geotiff.TIFF,), aliases=("tif",)),
    OutputFormat("bip", raw.encode_bip, (raw.BIP,)),
    OutputFormat("bsq", raw.encode_bsq, (raw.BSQ,)),
    OutputFormat("lerc", lercblob.encode_lerc, (lercblob.LERC,)),
)}
DEFAULT_FORMAT = "jpgpng"  # ArcGIS's
# extension -> media type of every file written here, f=kmz's too (the gateway serves stored results with it).
MEDIA_TYPES = {file.extension: file.media_type for f in FORMATS.values() for file in f.files}
MEDIA_TYPES[kmz.KMZ.extension] = kmz.KMZ.media_type

TIFF_COMPRESSIONS = tuple(geotiff.GDAL_COMPRESSION)
# QGIS sends compression=LERC with format=lerc; ArcGIS ignores compression outside tiff (docs/protocol.md §1.1).
IGNORED_COMPRESSIONS = ("LERC",)
LERC_VERSIONS = (1, 2)


def validate_options(options: EncodeOptions) -> None:
    """Raise ``invalid(...)`` naming the parameter when an option is out of its domain."""
    if isinstance(options.quality, bool) or not isinstance(options.quality, int) or not 0 <= options.quality <= 100:
        raise invalid(f"compressionQuality={options.quality!r} must be an integer from 0 to 100.")
    if options.compression not in TIFF_COMPRESSIONS and not (
            options.format != "tiff" and options.compression in IGNORED_COMPRESSIONS):
        raise invalid(f"compression={options.compression!r} must be one of {', '.join(geotiff.COMPRESSIONS)}.")
    if not isinstance(options.tolerance, (int, float)) or not math.isfinite(options.tolerance) \
            or options.tolerance < 0:
        raise invalid(f"compressionTolerance={options.tolerance!r} must be a finite number >= 0.")
    if options.lerc_version not in LERC_VERSIONS:
        raise invalid(f"lercVersion={options.lerc_version!r} must be 1 or 2.")
    if isinstance(options.png_level, bool) or not isinstance(options.png_level, int) \
            or not 0 <= options.png_level <= 9:
        raise invalid(f"PNG deflate level {options.png_level!r} must be an integer from 0 to 9.")
    if options.format not in FORMATS:
        raise invalid(f"format={options.format!r} is not one of {', '.join(FORMATS)}.")


def encode(block: ImageBlock, options: EncodeOptions) -> Encoded:
    """Encode ``block`` as ``options.format``; raises ImgsvcError for options or pixel types it cannot honour."""
    validate_options(options)
    check_block(block, options.format)
    return FORMATS[options.format].encoder(native(block), options)


def native(block: ImageBlock) -> ImageBlock:
    """The block with its pixels in host byte order (the encoders and their libraries assume it)."""
    if block.data.dtype.isnative:
        return block
    return dataclasses.replace(block, data=block.data.astype(block.data.dtype.newbyteorder("=")))


def check_block(block: ImageBlock, what: str) -> None:
    """Refuse, naming the combination, pixel types no ArcGIS format carries (C64/C128, 64-bit integers, bool)
    and images without pixels."""
    if block.data.dtype.name not in NAME_OF_DTYPE:
        raise unsupported(f"format={what} cannot carry {block.data.dtype} pixels; pixelType must be one of "
                          f"{' '.join(NAME_OF_DTYPE.values())}.")
    if block.shape[0] == 0 or block.shape[1] == 0 or block.band_count == 0:
        raise invalid(f"format={what} needs at least one band of 1 x 1 pixels, not "
                      f"{block.band_count} x {block.shape[1]} x {block.shape[0]}.")


def encode_kmz(block: ImageBlock, options: EncodeOptions) -> Encoded:
    """A KMZ ground overlay of ``block``, which the caller has already warped to EPSG:4326 (see ``kmz``)."""
    validate_options(options)
    check_block(block, "kmz")
    return kmz.encode_kmz(native(block), options)
