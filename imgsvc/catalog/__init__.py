"""The catalog: registered services and the rasters behind them, kept in a SQLite file or in PostgreSQL.

The service reads it through read-only connections, so nothing a request does can write to it; only the CLI
(`imgsvc add/remove/demo`) opens it for writing.
"""
from imgsvc.catalog.records import BandDistribution, FunctionTemplate, RasterItem, ServiceRecord, ServiceSettings
from imgsvc.catalog.store import Catalog, default_catalog_path

__all__ = ["BandDistribution", "Catalog", "FunctionTemplate", "RasterItem", "ServiceRecord", "ServiceSettings",
           "default_catalog_path"]
