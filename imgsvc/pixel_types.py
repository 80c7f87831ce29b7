"""ArcGIS pixel types (docs/protocol.md §1.1) and the numpy dtypes the pipeline holds them in.

The one table of them: the pixel-type stage (``kernels.convert_pixel_type``), the encoders, the raster functions,
the doors and the pages read it.  Plain data, so that reading it loads nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from imgsvc.errors import invalid, unsupported


@dataclass(frozen=True)
class PixelType:
    name: str  # the ArcGIS spelling
    dtype: str | None  # numpy dtype name of the pixels; None for UNKNOWN, which keeps the processing result's type
    bits: int | None = None  # U1, U2, U4: the bits of their uint8 in use (values clip to 0 .. 2**bits - 1)

    @property
    def complex(self) -> bool:
        """C64 and C128 are named by the contract, but no stage computes in complex numbers."""
        return self.dtype is not None and self.dtype.startswith("complex")


PIXEL_TYPES = (
    PixelType("UNKNOWN", None),
    PixelType("U1", "uint8", bits=1), PixelType("U2", "uint8", bits=2), PixelType("U4", "uint8", bits=4),
    PixelType("U8", "uint8"), PixelType("S8", "int8"), PixelType("U16", "uint16"), PixelType("S16", "int16"),
    PixelType("U32", "uint32"), PixelType("S32", "int32"), PixelType("F32", "float32"), PixelType("F64", "float64"),
    PixelType("C64", "complex64"), PixelType("C128", "complex128"),
)
UNKNOWN = "UNKNOWN"  # the default: the processing result's natural type
BY_NAME = {t.name: t for t in PIXEL_TYPES}
# The pixel type of each dtype the pipeline computes in (uint8 pixels are U8: U1, U2 and U4 exist only as requests).
NAME_OF_DTYPE = {t.dtype: t.name for t in PIXEL_TYPES if t.dtype and t.bits is None and not t.complex}


def pixel_type(name: str) -> PixelType:
    """The pixel type called ``name``: unknown names are invalid, the complex types unsupported."""
    found = BY_NAME.get(name)
    if found is None:
        raise invalid(f"Unknown pixelType {name!r}.", parameter="pixelType")
    if found.complex:
        raise unsupported(f"pixelType {name} (complex) is not supported.", parameter="pixelType")
    return found
