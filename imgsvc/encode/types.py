"""The values the encoders take and give, kept apart from the dispatch so format modules can import them."""
from __future__ import annotations

from dataclasses import dataclass

# ISA-L's level 1 behind per-row Sub/Up/Average filters (see png.py): measured in bench/bench_encode.py at 10-20x
# the speed of Pillow's default PNG (zlib 6) for output 1.07-1.19x its size on imagery and elevation.
DEFAULT_PNG_LEVEL = 1


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode a block.  ``format`` uses the ArcGIS spelling (docs/protocol.md §2.1)."""

    format: str
    quality: int = 75  # compressionQuality 0..100: jpg, jpgpng when it yields JPEG, tiff with JPEG compression
    compression: str | None = None  # tiff only: one of geotiff.COMPRESSIONS, or None (not asked)
    tolerance: float = 0.01  # LERC maxZError (compressionTolerance)
    lerc_version: int = 2  # 1 or 2
    png_level: int = DEFAULT_PNG_LEVEL  # 0..9 as in zlib, for every PNG flavour; a service setting (png.py)


@dataclass(frozen=True)
class Encoded:
    """Encoded bytes with their media type and the file extension of the encoding actually used."""

    data: bytes
    content_type: str
    extension: str


# lerc, bip and bsq have no registered media type; clients decode them by the format they asked for.
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True)
class FileType:
    """What an encoder writes: its media type and the extension a file of it gets.  Each encoder module declares
    the ones it writes; the format registry (``imgsvc.encode.FORMATS``) lists them per format."""

    media_type: str
    extension: str

    def encoded(self, data: bytes) -> Encoded:
        return Encoded(data, self.media_type, self.extension)
