"""``f=kmz``: the exported image as a KML GroundOverlay wrapped in a KMZ (docs/protocol.md §1.5, docs/decisions.md Q8).

Decided here: the block arrives already warped to EPSG:4326 (KML ground overlays are lat/lon boxes); the picture
follows the jpgpng rule (PNG with alpha when some pixel is masked, else JPEG at ``quality``) whatever ``format``
says, since Google Earth and other KML readers take only picture formats; the archive holds ``doc.kml`` first (KML
readers open the first .kml entry) and the picture beside it as ``image.png`` or ``image.jpg``.  Entries carry a
fixed timestamp so the same block always gives the same bytes.
"""
from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

from imgsvc.block import ImageBlock
from imgsvc.encode.picture import encode_jpgpng
from imgsvc.encode.types import Encoded, EncodeOptions, FileType
from imgsvc.errors import ErrorKind, ImgsvcError

KMZ = FileType("application/vnd.google-earth.kmz", "kmz")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

KML_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2">
  <GroundOverlay>
    <name>{name}</name>
    <Icon><href>{href}</href></Icon>
    <LatLonBox>
      <north>{north!r}</north>
      <south>{south!r}</south>
      <east>{east!r}</east>
      <west>{west!r}</west>
    </LatLonBox>
  </GroundOverlay>
</kml>
"""


def encode_kmz(block: ImageBlock, options: EncodeOptions, name: str = "exportImage") -> Encoded:
    if block.crs is None or not block.crs.is_geographic:
        raise ImgsvcError(ErrorKind.INTERNAL, "f=kmz needs the image warped to a geographic spatial reference "
                          f"(EPSG:4326) first, not {block.crs.name if block.crs is not None else 'none'}.")
    picture = encode_jpgpng(block, options)
    href = f"image.{picture.extension}"
    west, south, east, north = block.bounds
    kml = KML_TEMPLATE.format(name=escape(name), href=href, north=north, south=south, east=east, west=west)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("doc.kml", ZIP_EPOCH), kml.encode("utf-8"), zipfile.ZIP_DEFLATED)
        # The picture is already compressed; deflating it again costs time for nothing.
        archive.writestr(zipfile.ZipInfo(href, ZIP_EPOCH), picture.data, zipfile.ZIP_STORED)
    return KMZ.encoded(out.getvalue())
