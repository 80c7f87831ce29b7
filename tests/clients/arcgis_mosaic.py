"""Runs ArcGIS API for Python's ImageryLayer.query, filter_by and mosaic_by, unmodified, in its own venv
(build/venv-arcgis) against a mosaic dataset, and saves what they return.
Usage: python arcgis_mosaic.py SERVICE_URL BBOX_JSON OUT_DIR -> OUT_DIR/query.json, filtered.png, mosaicked.png."""
import json
import sys
from pathlib import Path

from arcgis.gis._impl._con import Connection
from arcgis.raster import ImageryLayer

service_url, bbox, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
# As in arcgis_export.py: a plain connection to the server (no GIS, which would need the internet).
connection = Connection(baseurl=service_url.split("/rest/")[0], all_ssl=False, product="SERVER")
layer = ImageryLayer(service_url, gis=connection)
features = layer.query(where="Year >= 2020", out_fields="Name,Year", order_by_fields="Year DESC")
(out / "query.json").write_text(json.dumps([f.attributes for f in features.features]))
export = {"bbox": bbox, "bbox_sr": 3857, "image_sr": 3857, "size": [200, 140], "export_format": "png", "f": "image"}
filtered = layer.filter_by(where="Sensor = 'alpha'")  # a new layer, the filter in its mosaic rule
(out / "filtered.png").write_bytes(filtered.export_image(**export))
mosaicked = ImageryLayer(service_url, gis=connection)
mosaicked.mosaic_by(method="Attribute", sort_by="Year", sort_val=2021)
(out / "mosaicked.png").write_bytes(mosaicked.export_image(**export))
