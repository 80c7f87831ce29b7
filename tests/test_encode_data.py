"""Data formats (bip, bsq, lerc 1 and 2) and KMZ, read back by independent decoders: a parser written here from
docs/protocol.md §2.3, the ``lerc`` package (Esri's decoder, which reads LERC1 and LERC2), zipfile + ElementTree."""
from __future__ import annotations

import io
import struct
import zipfile
import xml.etree.ElementTree as ET

import lerc
import numpy as np
import pytest
from affine import Affine
from PIL import Image
from pyproj import CRS

from imgsvc.block import ImageBlock
from imgsvc.encode import EncodeOptions, encode, encode_kmz
from imgsvc.errors import ErrorKind, ImgsvcError
from tests.test_encode import PIXEL_TYPES, TRANSFORM, CRS_UTM, hole_mask, make_block, smooth_bands

ELEMENT_SIZE = {"uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "uint32": 4, "int32": 4, "float32": 4, "float64": 8}


# ------------------------------------------------------------------------------------------------------- bip / bsq


def parse_raw(data: bytes, layout: str, width: int, height: int, pixel_type: str):
    """docs/protocol.md §2.3 as a client reads it: band count from the length, then the trailing MSB-first mask."""
    size = ELEMENT_SIZE[pixel_type]
    bands = len(data) // (width * height * size)
    pixel_bytes = bands * width * height * size
    values = np.frombuffer(data[:pixel_bytes], np.dtype(pixel_type).newbyteorder("<"))
    if layout == "bsq":
        values = values.reshape(bands, height, width)
    else:
        values = values.reshape(height, width, bands).transpose(2, 0, 1)
    mask_bytes = data[pixel_bytes:]
    assert len(mask_bytes) == (width * height + 7) // 8
    valid = np.zeros(width * height, bool)
    for k in range(width * height):
        valid[k] = (mask_bytes[k >> 3] >> (7 - (k & 7))) & 1
    return values, valid.reshape(height, width)


def test_raw_matches_the_reference_example():
    """§2.3: 3×2 U8 single band, pixel (1,2) nodata -> pixels then mask byte 0xF8."""
    data = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)
    valid = np.ones((2, 3), bool)
    valid[1, 2] = False
    block = ImageBlock(data, valid, TRANSFORM, CRS_UTM, (0,))
    assert encode(block, EncodeOptions("bsq")).data == bytes([1, 2, 3, 4, 5, 0, 0xF8])
    assert encode(block, EncodeOptions("bip")).data == bytes([1, 2, 3, 4, 5, 0, 0xF8])


@pytest.mark.parametrize("layout", ["bip", "bsq"])
@pytest.mark.parametrize("pixel_type", PIXEL_TYPES)
def test_raw_holds_every_pixel_type_unstretched_with_its_mask(layout, pixel_type):
    block = make_block(3, pixel_type, valid=hole_mask(), nodata=(7, 7, 7))
    out = encode(block, EncodeOptions(layout))
    assert out.content_type == "application/octet-stream" and out.extension == layout
    values, valid = parse_raw(out.data, layout, block.shape[1], block.shape[0], pixel_type)
    assert values.shape == block.data.shape
    np.testing.assert_array_equal(valid, block.valid)
    np.testing.assert_array_equal(values[:, block.valid], block.data[:, block.valid])
    assert (values[:, ~block.valid] == 7).all()


def test_raw_appends_the_mask_even_when_all_pixels_are_valid():
    block = make_block(2, "int16", rows=5, cols=3)
    values, valid = parse_raw(encode(block, EncodeOptions("bsq")).data, "bsq", 3, 5, "int16")
    assert valid.all()
    np.testing.assert_array_equal(values, block.data)


# ------------------------------------------------------------------------------------------------------------ LERC


def lerc_blobs(data: bytes) -> list[bytes]:
    """Split concatenated blobs the way clients do: decode one, advance by its size (LERC2 says it in its header;
    for LERC1 ask the library for the whole buffer's band count)."""
    blobs, offset = [], 0
    while offset < len(data):
        assert data[offset:offset + 6] == b"Lerc2 "
        version, = struct.unpack_from("<i", data, offset + 6)
        header = offset + 6 + 4 + (4 if version >= 3 else 0) + 8 + (4 if version >= 4 else 0)
        blob_size, = struct.unpack_from("<i", data, header + 8)
        blobs.append(data[offset:offset + blob_size])
        offset += blob_size
    return blobs


def decode_lerc(data: bytes):
    status, values, mask = lerc.decode(data)
    assert status == 0
    bands = values.shape[0] if values.ndim == 3 else 1
    values = values.reshape(bands, *values.shape[-2:])
    return values, mask


def assert_within(decoded: np.ndarray, original: np.ndarray, tolerance: float) -> None:
    original = original.astype(np.float64)
    # LERC1 returns float32, whose rounding comes on top of maxZError
    slack = np.abs(original) * np.finfo(np.float32).eps * 2 if decoded.dtype == np.float32 else 0
    assert (np.abs(decoded.astype(np.float64) - original) <= tolerance + slack).all()


@pytest.mark.parametrize("pixel_type", PIXEL_TYPES)
def test_lerc2_lossless_round_trips_every_pixel_type_exactly(pixel_type):
    block = make_block(3, pixel_type, valid=hole_mask())
    tolerance = 0.5 if np.dtype(pixel_type).kind in "iu" else 0.0
    out = encode(block, EncodeOptions("lerc", tolerance=tolerance, lerc_version=2))
    assert out.content_type == "application/octet-stream" and out.extension == "lerc"
    blobs = lerc_blobs(out.data)
    assert len(blobs) == 3
    values, mask = decode_lerc(out.data)
    assert values.dtype == np.dtype(pixel_type)
    masks = mask.reshape(-1, *block.shape)
    for band_mask in masks:
        np.testing.assert_array_equal(band_mask, block.valid)
    np.testing.assert_array_equal(values[:, block.valid], block.data[:, block.valid])


def test_lerc2_writes_codec_version_3_which_arcgis_js_3_reads():
    out = encode(make_block(2, "float32"), EncodeOptions("lerc"))
    for blob in lerc_blobs(out.data):
        assert blob[:6] == b"Lerc2 " and struct.unpack_from("<i", blob, 6)[0] == 3
        # Fletcher-32 checksum of the rest of the blob (codec v3+), as a v3 reader checks it
        stored, = struct.unpack_from("<I", blob, 10)
        rest = blob[14:]
        if len(rest) % 2:
            rest += b"\0"
        words = np.frombuffer(rest, ">u2").astype(np.int64)
        sum1 = sum2 = 0xFFFF
        for start in range(0, len(words), 359):
            for word in words[start:start + 359]:
                sum1 += int(word)
                sum2 += sum1
            sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
            sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
        assert stored == (sum2 << 16) | sum1


@pytest.mark.parametrize("tolerance", [0.01, 0.5, 2.0])
def test_lerc2_lossy_float_stays_within_tolerance_and_shrinks(tolerance):
    block = make_block(1, "float32", valid=hole_mask())
    lossless = encode(block, EncodeOptions("lerc", tolerance=0.0)).data
    lossy = encode(block, EncodeOptions("lerc", tolerance=tolerance)).data
    assert len(lossy) < len(lossless)
    values, _ = decode_lerc(lossy)
    assert_within(values[:, block.valid], block.data[:, block.valid], tolerance)


def test_lerc2_nan_pixels_become_invalid_in_that_band_only():
    data = smooth_bands(2, "float32")
    data[1, 0, :5] = np.nan
    block = ImageBlock(data, np.ones(data.shape[1:], bool), TRANSFORM, CRS_UTM)
    values, mask = decode_lerc(encode(block, EncodeOptions("lerc", tolerance=0.0)).data)
    masks = mask.reshape(2, *block.shape)
    assert masks[0].all() and not masks[1][0, :5].any() and masks[1][1:].all()
    np.testing.assert_array_equal(values[1][masks[1]], data[1][masks[1]])


def parse_lerc1_header(blob: bytes, offset: int = 0):
    assert blob[offset:offset + 10] == b"CntZImage "
    version, image_type, height, width, max_z_error = struct.unpack_from("<iiiid", blob, offset + 10)
    return version, image_type, height, width, max_z_error


@pytest.mark.parametrize("pixel_type", PIXEL_TYPES)
def test_lerc1_lossless_round_trips_as_float32(pixel_type):
    block = make_block(3, pixel_type, valid=hole_mask())
    tolerance = 0.5 if np.dtype(pixel_type).kind in "iu" else 0.0
    out = encode(block, EncodeOptions("lerc", tolerance=tolerance, lerc_version=1))
    assert out.data[:10] == b"CntZImage " and out.extension == "lerc"
    assert parse_lerc1_header(out.data) == (11, 8, block.shape[0], block.shape[1], tolerance)
    values, mask = decode_lerc(out.data)
    assert values.dtype == np.float32 and values.shape == block.data.shape
    np.testing.assert_array_equal(mask.reshape(block.shape), block.valid)
    np.testing.assert_array_equal(values[:, block.valid], block.data[:, block.valid].astype(np.float32))


@pytest.mark.parametrize("tolerance", [0.001, 0.01, 0.3, 5.0])
@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (64, 64), (100, 131), (257, 90)])
def test_lerc1_lossy_float_stays_within_tolerance(tolerance, shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    z = np.cumsum(rng.normal(0, 3, shape), axis=1).astype(np.float32) + 1000
    valid = rng.random(shape) > 0.2
    block = ImageBlock(z[None], valid, TRANSFORM, CRS_UTM)
    out = encode(block, EncodeOptions("lerc", tolerance=tolerance, lerc_version=1))
    values, mask = decode_lerc(out.data)
    np.testing.assert_array_equal(mask.reshape(shape) if mask is not None else np.ones(shape, bool), valid)
    assert_within(values[0][valid], z[valid], tolerance)


def test_lerc1_integer_tolerance_keeps_integers_and_bounds_the_error():
    block = make_block(1, "int16")
    values, _ = decode_lerc(encode(block, EncodeOptions("lerc", tolerance=3.7, lerc_version=1)).data)
    assert (values == np.round(values)).all()
    assert_within(values, block.data, 3.0)


def test_lerc1_only_band_0_carries_the_mask():
    block = make_block(2, "float32", valid=hole_mask())
    out = encode(block, EncodeOptions("lerc", tolerance=0.01, lerc_version=1)).data
    single = encode(ImageBlock(block.data[:1], block.valid, TRANSFORM, CRS_UTM),
                    EncodeOptions("lerc", tolerance=0.01, lerc_version=1)).data
    assert out.startswith(single)
    second = out[len(single):]
    _, _, height, width, _ = parse_lerc1_header(second)
    # right after the header comes the z part: tilesVert, tilesHori, numBytes, maxValue, then exactly numBytes
    tiles_v, tiles_h, num_bytes, _ = struct.unpack_from("<iiif", second, 34)
    assert tiles_v > 0 and tiles_h > 0 and 34 + 16 + num_bytes == len(second)
    # band 0's first part is the mask: no tiling, RLE bytes, maxCount 1
    assert struct.unpack_from("<iiif", single, 34)[:2] == (0, 0)
    assert struct.unpack_from("<f", single, 34 + 12)[0] == 1.0


@pytest.mark.parametrize("valid_fill", [True, False])
def test_lerc1_all_valid_or_all_invalid_use_a_constant_mask(valid_fill):
    block = ImageBlock(smooth_bands(1, "float32"), np.full((48, 64), valid_fill), TRANSFORM, CRS_UTM)
    out = encode(block, EncodeOptions("lerc", lerc_version=1)).data
    assert struct.unpack_from("<iiif", out, 34) == (0, 0, 0, 1.0 if valid_fill else 0.0)
    status, values, mask = lerc.decode(out)
    assert status == 0
    if valid_fill:
        assert_within(values, block.data[0], 0.01)
    else:
        assert mask is not None and not mask.any()


def test_lerc1_stores_nan_and_infinity_exactly():
    data = smooth_bands(1, "float32")
    data[0, 3, 4] = np.nan
    data[0, 40, 60] = np.inf
    block = ImageBlock(data, np.ones((48, 64), bool), TRANSFORM, CRS_UTM)
    values, _ = decode_lerc(encode(block, EncodeOptions("lerc", tolerance=0.1, lerc_version=1)).data)
    assert np.isnan(values[0, 3, 4]) and values[0, 40, 60] == np.inf
    finite = np.isfinite(data)
    assert_within(values[finite], data[finite], 0.1)


def test_lerc1_refuses_what_esri_readers_refuse():
    block = ImageBlock(np.zeros((1, 1, 20001), np.float32), np.ones((1, 20001), bool), TRANSFORM, CRS_UTM)
    with pytest.raises(ImgsvcError) as caught:
        encode(block, EncodeOptions("lerc", lerc_version=1))
    assert caught.value.kind is ErrorKind.UNIMPLEMENTED and "lercVersion=1" in caught.value.text
    # LERC2 has no such limit
    assert decode_lerc(encode(block, EncodeOptions("lerc")).data)[0].shape == (1, 1, 20001)


@pytest.mark.parametrize("tolerance", [0.01, 0.5, 2.0])
def test_lerc1_compresses_float_as_well_as_esris_lerc2(tolerance):
    block = make_block(3, "float32", valid=hole_mask())
    lerc1_size = len(encode(block, EncodeOptions("lerc", tolerance=tolerance, lerc_version=1)).data)
    lerc2_size = len(encode(block, EncodeOptions("lerc", tolerance=tolerance, lerc_version=2)).data)
    assert lerc1_size < 1.05 * lerc2_size


# ------------------------------------------------------------------------------------------------------------- KMZ

WGS84 = CRS.from_epsg(4326)


@pytest.mark.parametrize("masked, picture", [(False, "jpg"), (True, "png")])
def test_kmz_is_a_ground_overlay_of_the_picture_at_the_block_bounds(masked, picture):
    transform = Affine(0.01, 0.0, 14.0, 0.0, -0.01, 50.5)
    block = ImageBlock(smooth_bands(3, "uint8"), hole_mask() if masked else np.ones((48, 64), bool),
                       transform, WGS84)
    out = encode_kmz(block, EncodeOptions("jpgpng", quality=90))
    assert out.content_type == "application/vnd.google-earth.kmz" and out.extension == "kmz"
    with zipfile.ZipFile(io.BytesIO(out.data)) as archive:
        names = archive.namelist()
        assert names[0] == "doc.kml" and names[1] == f"image.{picture}"
        root = ET.fromstring(archive.read("doc.kml"))
        image = Image.open(io.BytesIO(archive.read(names[1])))
        image.load()
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    overlay = root.find("k:GroundOverlay", ns)
    assert overlay.find("k:Icon/k:href", ns).text == f"image.{picture}"
    box = overlay.find("k:LatLonBox", ns)
    edges = {edge: float(box.find(f"k:{edge}", ns).text) for edge in ("north", "south", "east", "west")}
    assert edges == pytest.approx({"north": 50.5, "south": 50.5 - 0.48, "east": 14.64, "west": 14.0})
    assert image.size == (64, 48) and image.format == ("PNG" if masked else "JPEG")
    if masked:
        np.testing.assert_array_equal(np.asarray(image)[..., 3], np.where(block.valid, 255, 0))


def test_kmz_refuses_a_projected_block():
    with pytest.raises(ImgsvcError) as caught:
        encode_kmz(make_block(3), EncodeOptions("jpgpng"))
    assert "EPSG:4326" in caught.value.text


def test_kmz_bytes_do_not_depend_on_the_clock():
    block = ImageBlock(smooth_bands(1, "uint8"), np.ones((48, 64), bool), Affine(0.1, 0, 0, 0, -0.1, 0), WGS84)
    assert encode_kmz(block, EncodeOptions("jpgpng")).data == encode_kmz(block, EncodeOptions("jpgpng")).data


def walk_lerc1_z_tiles(blob: bytes, with_mask: bool = True):
    """Walk the z-part tiles the way Esri's JavaScript decoder (LercDecode.js) does: (tilesV, tilesH, tile
    encodings, bytes the tiles took, numBytes the header promised).  That decoder sizes a raw (encoding 0) tile
    as (numBytes - 1) / 4 floats, i.e. it reads raw floats only when the z part is one tile."""
    offset = 34
    if with_mask:
        offset += 16 + struct.unpack_from("<i", blob, 34 + 8)[0]
    tiles_v, tiles_h, num_bytes, _ = struct.unpack_from("<iiif", blob, offset)
    _, _, height, width, _ = parse_lerc1_header(blob)
    offset += 16
    start = offset
    rows = tiles_v + (height % tiles_v > 0)
    cols = tiles_h + (width % tiles_h > 0)
    encodings = []
    for _ in range(rows * cols):
        header = blob[offset]
        encoding = header & 63
        encodings.append(encoding)
        offset += 1
        if encoding == 2:
            continue
        if encoding == 0:
            offset += num_bytes - 1  # the JS reading
            continue
        offset += {2: 1, 1: 2, 0: 4}[header >> 6]
        if encoding == 1:
            count_header = blob[offset]
            bits = count_header & 63
            width_bytes = {2: 1, 1: 2, 0: 4}[count_header >> 6]
            count = int.from_bytes(blob[offset + 1:offset + 1 + width_bytes], "little")
            offset += 1 + width_bytes + (count * bits + 7) // 8
    return tiles_v, tiles_h, encodings, offset - start, num_bytes


@pytest.mark.parametrize("tolerance", [0.0, 1e-5, 0.01])
def test_lerc1_raw_tiles_only_in_a_single_tile_image_as_esris_js_decoder_needs(tolerance):
    data = np.cumsum(np.random.default_rng(5).normal(0, 50, (1, 96, 80)), axis=2).astype(np.float32)
    data[0, 50, 7] = np.nan  # one tile must be raw
    data[0, 10, 10] = 4e5  # and a range beyond 2**24 quanta at 1e-5
    block = ImageBlock(data, hole_mask(96, 80), TRANSFORM, CRS_UTM)
    blob = encode(block, EncodeOptions("lerc", tolerance=tolerance, lerc_version=1)).data
    tiles_v, tiles_h, encodings, walked, promised = walk_lerc1_z_tiles(blob)
    assert walked == promised
    assert (tiles_v, tiles_h) == (1, 1) and encodings == [0]
    values, _ = decode_lerc(blob)
    assert np.isnan(values[0, 50, 7])


def test_lerc1_tiles_walk_exactly_like_esris_js_decoder_on_ordinary_data():
    block = make_block(2, "float32", valid=hole_mask(100, 131), rows=100, cols=131)
    blob = encode(block, EncodeOptions("lerc", tolerance=0.01, lerc_version=1)).data
    tiles_v, tiles_h, encodings, walked, promised = walk_lerc1_z_tiles(blob)
    assert tiles_v * tiles_h > 1 and 0 not in encodings and walked == promised
