"""Services Directory-style HTML pages (`f=html`), so a person can explore a service in a browser."""
from __future__ import annotations

import html
import json

EXPORT_PARAMETERS = (
    ("bbox", ""), ("bboxSR", ""), ("size", "400,400"), ("imageSR", ""), ("time", ""), ("format", "jpgpng"),
    ("pixelType", "UNKNOWN"), ("noData", ""), ("noDataInterpretation", "esriNoDataMatchAny"),
    ("interpolation", "RSP_BilinearInterpolation"), ("compression", ""), ("compressionQuality", ""),
    ("bandIds", ""), ("sliceId", ""), ("mosaicRule", ""), ("renderingRule", ""), ("adjustAspectRatio", "true"),
    ("validateExtent", "false"), ("lercVersion", "2"), ("compressionTolerance", ""), ("datumTransformation", ""),
)
_STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:70em}table{border-collapse:collapse}"
          "td{border-bottom:1px solid #ddd;padding:2px 8px;vertical-align:top}input{width:28em}")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h2>{html.escape(title)}</h2>{body}</body></html>")


def services_page(doc: dict, base: str) -> str:
    rows = "".join(
        f"<li><a href='{base}/arcgis/rest/services/{html.escape(s['name'])}/ImageServer'>"
        f"{html.escape(s['name'])}</a> (ImageServer)</li>" for s in doc["services"])
    return _page("Folder: /", f"<p>Services:</p><ul>{rows}</ul>")


def root_page(doc: dict, url: str) -> str:
    rows = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(json.dumps(v))}</td></tr>"
                   for k, v in doc.items())
    links = (f"<p><a href='{url}/exportImage'>Export Image</a> | <a href='{url}?f=pjson'>JSON</a></p>")
    return _page(f"{doc['name']} (ImageServer)", links + f"<table>{rows}</table>")


def export_form(service: str, params, result: dict | None) -> str:
    inputs = "".join(
        f"<tr><td>{name}</td><td><input name='{name}' value='{html.escape(params.get(name) or default)}'></td></tr>"
        for name, default in EXPORT_PARAMETERS)
    body = (f"<form method='get'><table>{inputs}<tr><td>f</td><td><select name='f'>"
            "<option>html</option><option>image</option><option>json</option><option>pjson</option>"
            "<option>kmz</option></select></td></tr></table><button type='submit'>Export Image (GET)</button>"
            "</form>")
    if result is not None:
        ext = result["extent"]
        body += (f"<h3>Result</h3><p>width {result['width']}, height {result['height']}; extent "
                 f"{ext['xmin']}, {ext['ymin']}, {ext['xmax']}, {ext['ymax']} "
                 f"({html.escape(json.dumps(ext['spatialReference']))})</p>"
                 f"<img src='{html.escape(result['href'])}' alt='exported image'>")
    return _page(f"Export Image ({service})", body)


