"""Read a GDAL connection file with rasterio in a process of its own, the way a GDAL user would, and save the
pixels as .npy.  Kept out of the test process: the gateway's in-process reads share GDAL's global block cache and
would evict the WMS blocks, so GDAL would fetch each block several times.
Usage: python gdal_read.py CONNECTION.xml OUT.npy"""
import sys

import numpy as np
import rasterio

with rasterio.Env(GDAL_HTTP_TIMEOUT=60), rasterio.open(sys.argv[1]) as dataset:
    np.save(sys.argv[2], dataset.read())
