"""Applies ArcGIS API for Python's raster functions (arcgis.raster.functions), unmodified, to an ImageryLayer in its
own venv (build/venv-arcgis) and exports each result as a PNG.
Usage: python arcgis_functions.py SERVICE_URL BBOX_JSON OUT_DIR NAME[,NAME...]; NAME is one of hillshade, stretch,
colormap, ndvi, and its result is saved as OUT_DIR/NAME.png."""
import json
import sys
from pathlib import Path

from arcgis.gis._impl._con import Connection
from arcgis.raster import ImageryLayer
from arcgis.raster.functions import colormap, hillshade, ndvi, stretch

service_url, bbox, out, names = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3]), sys.argv[4].split(",")
# As in arcgis_export.py: a plain connection to the server (no GIS, which would need the internet).
connection = Connection(baseurl=service_url.split("/rest/")[0], all_ssl=False, product="SERVER")
layer = ImageryLayer(service_url, gis=connection)
functions = {
    "hillshade": lambda: hillshade(layer, azimuth=315, altitude=45, z_factor=1),
    "stretch": lambda: stretch(layer, stretch_type="StdDev", num_stddev=2.5, dra=False),
    "colormap": lambda: colormap(stretch(layer, stretch_type="MinMax"), colormap_name="Elevation"),
    "ndvi": lambda: ndvi(layer, band_indexes="4 3"),
}
for name in names:
    raster = functions[name]()
    image = raster.export_image(bbox=bbox, bbox_sr=3857, image_sr=3857, size=[200, 120], export_format="png",
                                f="image")
    (out / f"{name}.png").write_bytes(image)
