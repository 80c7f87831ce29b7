"""imgsvc: an open image service answering ArcGIS Image Server's exportImage over gRPC and REST."""

__version__ = "0.1.0"
