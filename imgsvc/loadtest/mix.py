"""Which exportImage requests a load test sends: a seeded random mix drawn from the service's extent, or the lines
of a file of recorded requests.  A request is its ArcGIS parameters as (name, value) pairs, which either door
turns into what it sends (the gRPC door through the gateway's own parser, so both doors mean the same thing)."""
from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from imgsvc.client import arcgis_text
from imgsvc.errors import invalid

Request = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ServiceExtent:
    """What the mix needs of a service: its full extent, that extent's spatial reference (ArcGIS JSON) and its
    native pixel size, which the scales multiply."""
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    spatial_reference: dict
    pixel_size: float

    @property
    def bbox_sr(self) -> str:
        sr = self.spatial_reference
        wkid = sr.get("latestWkid") or sr.get("wkid")
        return str(wkid) if wkid else json.dumps(sr)


@dataclass(frozen=True)
class Mix:
    """The choices each random request draws one of, uniformly.  A scale is the output pixel size over the
    service's native one (1: full resolution; 8: an eighth, which a server answers from an overview)."""
    sizes: tuple[tuple[int, int], ...] = ((512, 512),)
    formats: tuple[str, ...] = ("png",)
    scales: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    interpolations: tuple[str, ...] = ()  # none: the service's default
    rendering_rules: tuple[str, ...] = ()
    mosaic_rules: tuple[str, ...] = ()
    fixed: tuple[tuple[str, str], ...] = field(default=())  # --param NAME=VALUE, sent with every request


def random_requests(extent: ServiceExtent, mix: Mix, seed: int) -> Iterator[Request]:
    """An endless seeded stream: the same seed, extent and mix give the same requests in the same order."""
    rng = random.Random(seed)
    width, height = extent.xmax - extent.xmin, extent.ymax - extent.ymin
    while True:
        columns, rows = rng.choice(mix.sizes)
        pixel = rng.choice(mix.scales) * extent.pixel_size
        box_w, box_h = columns * pixel, rows * pixel
        x = _start(rng, extent.xmin, width, box_w)
        y = _start(rng, extent.ymin, height, box_h)
        params = [("bbox", f"{x!r},{y!r},{x + box_w!r},{y + box_h!r}"), ("bboxSR", extent.bbox_sr),
                  ("imageSR", extent.bbox_sr), ("size", f"{columns},{rows}"), ("format", rng.choice(mix.formats))]
        for name, choices in (("interpolation", mix.interpolations), ("renderingRule", mix.rendering_rules),
                              ("mosaicRule", mix.mosaic_rules)):
            if choices:
                params.append((name, rng.choice(choices)))
        yield (*params, *mix.fixed, ("f", "image"))


def _start(rng: random.Random, low: float, span: float, box: float) -> float:
    """A box's lower edge placed at random so the box lies inside the extent (centred when it is larger)."""
    return low + (rng.uniform(0.0, span - box) if box < span else (span - box) / 2)


def recorded_requests(path: Path) -> Iterator[Request]:
    """The requests of a file, sent in its order and again from the top: one per line, either a URL or query string
    (``bbox=...&size=...``, everything before ``?`` ignored) or a JSON object of ArcGIS parameters.  Blank lines and
    lines starting with ``#`` are skipped; ``f`` is ``image`` unless a line says otherwise."""
    requests = [_request_line(line, path, number)
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("#")]
    if not requests:
        raise invalid(f"{path} holds no request.")
    return itertools.cycle(requests)


def _request_line(line: str, path: Path, number: int) -> Request:
    line = line.strip()
    if line.startswith("{"):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise invalid(f"{path}:{number}: not a JSON object: {exc}.") from None
        pairs = [(str(name), arcgis_text(value)) for name, value in doc.items()]
    else:
        pairs = parse_qsl(line.split("?", 1)[1] if "?" in line else line, keep_blank_values=True)
    if not any(name.lower() == "f" for name, _ in pairs):
        pairs.append(("f", "image"))
    return tuple(pairs)
