"""Runs ArcGIS API for Python's ImageryLayer.export_image, unmodified, in its own venv (build/venv-arcgis) and
saves each result for the test to check.
Usage: python arcgis_export.py SERVICE_URL CALLS_JSON OUT_DIR
CALLS_JSON is a list of export_image keyword arguments; result i is saved as OUT_DIR/i.json (f="json"),
i.bin (f="image") or i.npy (f="numpy_array")."""
import json
import sys
from pathlib import Path

import numpy as np
from arcgis.gis._impl._con import Connection
from arcgis.raster import ImageryLayer

service_url, calls, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
# A layer without a GIS builds an anonymous one against www.arcgis.com, which needs the internet.  A plain
# connection to the server is what the layer uses for its own requests; all_ssl=False keeps http:// as given.
connection = Connection(baseurl=service_url.split("/rest/")[0], all_ssl=False, product="SERVER")
layer = ImageryLayer(service_url, gis=connection)
for index, call in enumerate(calls):
    result = layer.export_image(**call)
    if call["f"] == "json":
        (out / f"{index}.json").write_text(json.dumps(result))
    elif call["f"] == "image":
        (out / f"{index}.bin").write_bytes(result)
    else:
        np.save(out / f"{index}.npy", result)
