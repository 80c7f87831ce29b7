"""The 8-bit picture formats: jpgpng, png, png8, png24, png32, jpg, bmp, gif (docs/protocol.md §2.1, §2.2).

Band use: 1 band -> grayscale; 2 bands -> the first band as grayscale (a picture has no meaning for a second band,
and ArcGIS JS sends bandIds=0,0,0 for 2-band services anyway); 3 bands -> RGB; more -> the first three as RGB.
Non-U8 data goes through the default stretch (``stretch.to_8bit``) first.

Flavours, and what masked (invalid) pixels become:

=========  =================================================  ==============================================
format     all pixels valid                                   some pixels masked
=========  =================================================  ==============================================
jpgpng     JPEG (L / RGB)                                     PNG with alpha (LA / RGBA), alpha 0 on masked
png        PNG L / RGB (no alpha channel to pay for)          PNG LA / RGBA (docs/decisions.md Q7)
png32      PNG RGBA, alpha 255                                PNG RGBA, alpha 0 on masked
png24      PNG RGB                                            PNG RGB + tRNS naming one colour that no valid
                                                              pixel uses; masked pixels hold that colour
png8       PNG palette (exact when <= 255 colours)            same, one palette entry with alpha 0 (tRNS)
gif        GIF palette (exact when <= 255 colours)            same, one transparent palette index
jpg        JPEG                                               masked pixels black (``stretch.MASKED_VALUE``)
bmp        BMP L / RGB                                        masked pixels black (``stretch.MASKED_VALUE``)
=========  =================================================  ==============================================
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from imgsvc.block import ImageBlock
from imgsvc.encode import png
from imgsvc.encode.stretch import to_8bit
from imgsvc.encode.types import Encoded, EncodeOptions, FileType

JPEG = FileType("image/jpeg", "jpg")
PNG = FileType("image/png", "png")
GIF = FileType("image/gif", "gif")
BMP = FileType("image/bmp", "bmp")
PALETTE_COLOURS = 255  # one of the 256 palette entries is kept for the transparent index


def picture_pixels(block: ImageBlock, *, rgb: bool = False, alpha: bool = False) -> np.ndarray:
    """The block as 8-bit pixels, C-contiguous: (rows, cols) gray, or (rows, cols, k) with k = 2 (gray, alpha),
    3 (RGB) or 4 (RGB, alpha).  ``rgb`` repeats a gray band into R, G and B; ``alpha`` adds 255 where valid and 0
    where masked.  Masked pixels' colour is ``stretch.MASKED_VALUE``.  Channels are written straight into one interleaved array
    (no stacking and concatenating), which matters at these sizes."""
    u8 = to_8bit(block)
    colour = [u8[0]] if block.band_count < 3 else [u8[0], u8[1], u8[2]]
    if rgb and len(colour) == 1:
        colour *= 3
    if len(colour) == 1 and not alpha:
        return np.ascontiguousarray(colour[0])
    out = np.empty((*block.shape, len(colour) + alpha), np.uint8)
    for channel, band in enumerate(colour):
        out[..., channel] = band
    if alpha:
        alpha_plane(block, out=out[..., -1])
    return out


def alpha_plane(block: ImageBlock, out: np.ndarray | None = None) -> np.ndarray:
    """(rows, cols) uint8: 255 where valid, 0 where masked."""
    return np.multiply(block.valid.view(np.uint8), np.uint8(255), out=out)


def masked_pixels(block: ImageBlock) -> bool:
    return not block.valid.all()


def jpeg_bytes(pixels: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


def encode_jpgpng(block: ImageBlock, options: EncodeOptions) -> Encoded:
    if masked_pixels(block):
        return encode_png(block, options)
    return JPEG.encoded(jpeg_bytes(picture_pixels(block), options.quality))


def encode_jpg(block: ImageBlock, options: EncodeOptions) -> Encoded:
    return JPEG.encoded(jpeg_bytes(picture_pixels(block), options.quality))


def encode_png(block: ImageBlock, options: EncodeOptions) -> Encoded:
    pixels = picture_pixels(block, alpha=masked_pixels(block))
    return PNG.encoded(png.write(pixels, level=options.png_level))


def encode_png32(block: ImageBlock, options: EncodeOptions) -> Encoded:
    if block.band_count < 3:  # gray into R, G and B: png.py filters and compresses it as such
        return PNG.encoded(png.write_gray_as_rgb(picture_pixels(block), alpha_plane(block), level=options.png_level))
    rgba = picture_pixels(block, rgb=True, alpha=True)
    return PNG.encoded(png.write(rgba, level=options.png_level))


def unused_colour(rgb: np.ndarray, valid: np.ndarray) -> tuple[int, int, int]:
    """A colour no valid pixel has, found in O(pixels): first a 16-bit prefix used by fewer than 256 pixels
    (one exists while there are fewer than 2**24 pixels), then a low byte no pixel with that prefix uses."""
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    packed = packed[valid]
    prefixes = packed >> 8
    prefix_counts = np.bincount(prefixes, minlength=1 << 16)
    prefix = int(np.argmin(prefix_counts))
    if prefix_counts[prefix] >= 256:
        raise ValueError("every 24-bit colour is in use")  # impossible below 2**24 valid pixels
    low_used = np.bincount(packed[prefixes == prefix] & 0xFF, minlength=256)
    colour = (prefix << 8) | int(np.argmin(low_used))
    return colour >> 16, (colour >> 8) & 0xFF, colour & 0xFF


def encode_png24(block: ImageBlock, options: EncodeOptions) -> Encoded:
    if block.band_count < 3 and not masked_pixels(block):
        return PNG.encoded(png.write_gray_as_rgb(picture_pixels(block), None, level=options.png_level))
    rgb = picture_pixels(block, rgb=True)
    transparent = None
    if masked_pixels(block):
        transparent = unused_colour(rgb, block.valid)
        rgb = rgb.copy()
        rgb[~block.valid] = transparent
    return PNG.encoded(png.write(rgb, level=options.png_level, transparent_colour=transparent))


def palette_image(block: ImageBlock) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(indices (rows, cols) uint8, palette (256, 3) uint8, transparent index or None).

    Exact when the valid pixels use at most 255 colours (gray images always do, see below); otherwise Pillow's
    fast-octree quantiser picks 255 colours.  Index 255 is never given to a colour, so it is free for masked pixels.
    """
    pixels = picture_pixels(block)
    valid = block.valid
    if pixels.ndim == 2:
        # 256 grays need all 256 indices; fold the rarest gray into its neighbour (error 1 on those pixels only)
        # so that one index is left for masked pixels.  Without masked pixels the identity palette is exact.
        gray = pixels
        palette = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
        if not masked_pixels(block):
            return gray, palette, None
        counts = np.bincount(gray[valid], minlength=256)
        free = int(np.argmin(counts))
        if counts[free]:
            neighbour = free - 1 if free == 255 else free + 1
            gray = np.where(gray == free, np.uint8(neighbour), gray)
        gray = np.where(valid, gray, np.uint8(free))
        return gray, palette, free
    packed = (pixels[..., 0].astype(np.uint32) << 16) | (pixels[..., 1].astype(np.uint32) << 8) | pixels[..., 2]
    packed = packed[valid]
    indices = np.full(valid.shape, PALETTE_COLOURS, np.uint8)
    # Sorting every pixel to count colours costs more than quantising; a sample with too many colours already
    # proves the image has too many.
    few_colours = np.unique(packed[::97]).size <= PALETTE_COLOURS
    if few_colours:
        colours, inverse = np.unique(packed, return_inverse=True)
        few_colours = colours.size <= PALETTE_COLOURS
    if few_colours:
        indices[valid] = inverse.astype(np.uint8)
        palette = np.stack([(colours >> 16) & 0xFF, (colours >> 8) & 0xFF, colours & 0xFF], axis=1).astype(np.uint8)
    else:
        # Fast octree: ~100x faster than median cut on imagery, mean error ~6 levels instead of ~5.
        quantised = Image.fromarray(pixels).quantize(PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE,
                                                     dither=Image.Dither.NONE)
        indices[valid] = np.asarray(quantised)[valid]
        palette = np.frombuffer(bytes(quantised.getpalette()[: 3 * PALETTE_COLOURS]), np.uint8).reshape(-1, 3)
    # A full 256-entry palette, so the transparent index always names an entry (PNG and GIF require it).
    full_palette = np.zeros((256, 3), np.uint8)
    full_palette[: len(palette)] = palette
    return indices, full_palette, (PALETTE_COLOURS if masked_pixels(block) else None)


def encode_png8(block: ImageBlock, options: EncodeOptions) -> Encoded:
    indices, palette, transparent = palette_image(block)
    return PNG.encoded(png.write_palette(indices, palette, transparent, level=options.png_level))


def encode_gif(block: ImageBlock, options: EncodeOptions) -> Encoded:
    indices, palette, transparent = palette_image(block)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.tobytes())
    out = io.BytesIO()
    if transparent is None:
        image.save(out, "GIF", optimize=False)
    else:
        image.save(out, "GIF", optimize=False, transparency=transparent)
    return GIF.encoded(out.getvalue())


def encode_bmp(block: ImageBlock, options: EncodeOptions) -> Encoded:
    out = io.BytesIO()
    Image.fromarray(picture_pixels(block)).save(out, "BMP")
    return BMP.encoded(out.getvalue())
