"""PNG writing for every PNG flavour: gray, gray+alpha, RGB, RGBA, RGB + tRNS colour, palette + tRNS."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def write(pixels: np.ndarray, level: int, transparent_colour: tuple[int, int, int] | None = None) -> bytes:
    """PNG of (rows, cols) gray or (rows, cols, 2|3|4) uint8 pixels."""
    out = io.BytesIO()
    image = Image.fromarray(pixels)
    if transparent_colour is None:
        image.save(out, "PNG", compress_level=level)
    else:
        image.save(out, "PNG", compress_level=level, transparency=transparent_colour)
    return out.getvalue()


def write_palette(indices: np.ndarray, palette: np.ndarray, transparent: int | None, level: int) -> bytes:
    """Palette PNG; ``transparent`` is the index whose tRNS alpha is 0."""
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.astype(np.uint8).tobytes())
    out = io.BytesIO()
    if transparent is None:
        image.save(out, "PNG", compress_level=level)
    else:
        image.save(out, "PNG", compress_level=level, transparency=transparent)
    return out.getvalue()
