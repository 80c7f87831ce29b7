"""Where rasters live: local files, or objects in S3-compatible storage (docs/decisions.md "Object storage").

An item's path is a local absolute path or ``s3://bucket/key``; GDAL reads the latter through ``/vsis3/`` (rasterio
maps the scheme).  The endpoint and credentials come from the standard variables ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` and ``AWS_ENDPOINT_URL``, which this module turns into GDAL's own settings
with the ones a COG wants over HTTP.  Listing a prefix (registration only) goes through boto3, which is behind this
module alone.  Only paths an operator registered are ever opened: a request cannot name one.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from imgsvc.errors import invalid

SCHEME = "s3://"
# Objects a prefix contributes: GeoTIFFs/COGs (netCDF and Zarr read through GDAL need local files).
OBJECT_SUFFIXES = (".tif", ".tiff")

# GDAL's settings for COGs over HTTP: no directory listing on open (a sidecar probe per open), only the raster
# suffixes fetched, consecutive ranges merged into one request, requests multiplexed, read blocks cached.
COG_OPTIONS = {
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ",".join(OBJECT_SUFFIXES),
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(64 * 2**20),
}


def is_remote(path: str | os.PathLike) -> bool:
    return str(path).startswith(SCHEME)


def source_path(text: str | os.PathLike) -> str:
    """What the catalog records for a raster: a local file's absolute path, or the object's URL as given."""
    return str(text) if is_remote(text) else str(Path(text).resolve())


def signature(path: str) -> tuple | None:
    """What changes when a local file is rewritten (mtime, size, inode); None for an object, which an operator
    replaces by registering it again."""
    if is_remote(path):
        return None
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def gdal_options() -> dict[str, str]:
    """GDAL's settings for the objects, from the standard AWS variables of this process's environment."""
    options = dict(COG_OPTIONS)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        url = urlsplit(endpoint)
        options["AWS_S3_ENDPOINT"] = url.netloc + url.path.rstrip("/")
        options["AWS_HTTPS"] = "NO" if url.scheme == "http" else "YES"
        options["AWS_VIRTUAL_HOSTING"] = "FALSE"  # path-style: what S3-compatible servers answer
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["AWS_REGION"] = region
    return options


def list_objects(url: str) -> list[str]:
    """The rasters ``url`` names: the object itself, or every raster under it taken as a prefix, in key order."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    parts = urlsplit(url)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket:
        raise invalid(f"{url} names no bucket (s3://bucket/key or s3://bucket/prefix/).")
    client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or
                          os.environ.get("AWS_ENDPOINT_URL") or None)
    try:
        if key and not key.endswith("/"):
            try:
                client.head_object(Bucket=bucket, Key=key)
                return [url]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].lower().endswith(OBJECT_SUFFIXES)]
    except (BotoCoreError, ClientError) as exc:
        raise invalid(f"Cannot list {url}: {exc}") from exc
    if not keys:
        raise invalid(f"No raster object (.tif, .tiff) under {url}.")
    return [f"{SCHEME}{bucket}/{k}" for k in sorted(keys)]
