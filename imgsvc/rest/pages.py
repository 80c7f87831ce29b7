"""Services Directory-style HTML pages (`f=html`), so a person can explore a service in a browser, and the map page.

Everything the pages show comes from the same JSON documents the clients get; the pages only lay them out.
"""
from __future__ import annotations

import html
import json
from urllib.parse import urlencode

from imgsvc.encode import DEFAULT_FORMAT, FORMATS, LERC_VERSIONS
from imgsvc.encode.geotiff import COMPRESSIONS
from imgsvc.identify import GEOMETRY_TYPES, POINT
from imgsvc.kernels import RESAMPLING_METHODS
from imgsvc.params import DEFAULT_SIZE, NO_DATA_INTERPRETATIONS
from imgsvc.pixel_types import PIXEL_TYPES

# (name, choices or None for free text, hint): every exportImage parameter of docs/protocol.md §1.1; "" = default.
EXPORT_PARAMETERS = (
    ("bbox", None, "xmin,ymin,xmax,ymax or an envelope JSON"),
    ("bboxSR", None, "wkid or spatial reference JSON; empty = the service's"),
    ("size", None, "width,height"),
    ("imageSR", None, "wkid or spatial reference JSON; empty = the service's"),
    ("time", None, "t or t1,t2 in epoch milliseconds"),
    ("format", tuple(FORMATS), ""),
    ("pixelType", ("", *(t.name for t in PIXEL_TYPES if not t.complex)), ""),
    ("noData", None, "one value, or one per band"),
    ("noDataInterpretation", ("", *NO_DATA_INTERPRETATIONS), ""),
    ("interpolation", ("", *(m.interpolation for m in RESAMPLING_METHODS)), "empty = the service default"),
    ("compression", ("", *COMPRESSIONS), "tiff only"),
    ("compressionQuality", None, "0-100 (jpg)"),
    ("compressionTolerance", None, "lerc max error"),
    ("lercVersion", ("", *map(str, LERC_VERSIONS)), ""),
    ("bandIds", None, "comma-separated 0-based band ids"),
    ("mosaicRule", None, "JSON"),
    ("renderingRule", None, "JSON, e.g. {\"rasterFunction\":\"None\"}"),
    ("sliceId", None, ""),
    ("datumTransformation", None, "wkid or JSON"),
    ("adjustAspectRatio", ("", "true", "false"), "default true"),
    ("validateExtent", ("", "false", "true"), "default false"),
)
IDENTIFY_PARAMETERS = (
    ("geometry", None, "x,y in the service SR, or {\"x\":..,\"y\":..,\"spatialReference\":{\"wkid\":..}}"),
    ("geometryType", GEOMETRY_TYPES, ""),
    ("mosaicRule", None, "JSON"),
    ("renderingRule", None, "JSON"),
    ("pixelSize", None, "x,y (the pixel is read at full resolution)"),
    ("time", None, ""),
    ("returnGeometry", ("", "true", "false"), ""),
    ("returnCatalogItems", ("", "true", "false"), ""),
)
CHILD_RESOURCES = (("info/iteminfo", "Info"), ("keyProperties", "Key Properties"),
                   ("rasterFunctionInfos", "Raster Function Infos"), ("statistics", "Statistics"),
                   ("histograms", "Histograms"), ("legend", "Legend"), ("info/metadata", "Metadata"))
OPERATIONS = (("exportImage", "Export Image"), ("identify", "Identify"))
# The root fields a person wants first; the rest follow in the full table.
SUMMARY_FIELDS = ("name", "description", "copyrightText", "serviceDataType", "bandCount", "bandNames", "pixelType",
                  "pixelSizeX", "pixelSizeY", "extent", "spatialReference", "noDataValues", "minValues",
                  "maxValues", "meanValues", "stdvValues", "capabilities", "maxImageWidth", "maxImageHeight",
                  "defaultResamplingMethod", "currentVersion")
# The mosaic methods the map page offers: those that need nothing more than their name.
MAP_MOSAIC_METHODS = ("None", "Center", "NorthWest", "Nadir", "Seamline")
VENDOR = {"leaflet_js": "vendor/leaflet-1.9.4/leaflet.js", "leaflet_css": "vendor/leaflet-1.9.4/leaflet.css",
          "esri_leaflet_js": "vendor/esri-leaflet-3.0.19/esri-leaflet.js"}
INTERPOLATION_OF_DEFAULT = {m.default_name: m.interpolation for m in RESAMPLING_METHODS}

_STYLE = """
body{font-family:Verdana,Helvetica,sans-serif;font-size:13px;margin:0;color:#222}
header{background:#3a5a80;color:#fff;padding:8px 16px}header a{color:#fff}
main{padding:12px 16px;max-width:75em}h2{margin:.2em 0 .6em}h3{margin:1.2em 0 .4em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 8px;vertical-align:top;text-align:left}
td.v{font-family:monospace;word-break:break-all}input[type=text]{width:32em}select{min-width:12em}
.hint{color:#777;font-size:11px}.error{background:#fee;border:1px solid #c00;padding:8px;margin:8px 0}
pre{background:#f6f6f6;padding:8px;overflow:auto;max-height:40em}nav a{margin-right:1em}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, crumbs: str = "") -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style></head><body><header>ArcGIS REST Services Directory (imgsvc) {crumbs}"
            f"</header><main><h2>{_e(title)}</h2>{body}</main></body></html>")


def _crumbs(service_url: str | None = None, name: str | None = None) -> str:
    base = service_url.split("/arcgis/rest/services/")[0] if service_url else ""
    parts = [f"<a href='{_e(base)}/arcgis/rest/services'>Home</a>"]
    if service_url and name:
        parts.append(f"<a href='{_e(service_url)}'>{_e(name)} (ImageServer)</a>")
    return "&gt; " + " &gt; ".join(parts)


def _json_cell(value) -> str:
    return f"<td class='v'>{_e(json.dumps(value))}</td>"


def services_page(doc: dict, base: str) -> str:
    rows = "".join(
        f"<li><a href='{_e(base)}/arcgis/rest/services/{_e(s['name'])}/ImageServer'>{_e(s['name'])}</a> "
        f"(ImageServer) &mdash; <a href='{_e(base)}/arcgis/rest/services/{_e(s['name'])}/ImageServer/map'>map</a>"
        "</li>" for s in doc["services"])
    body = (f"<p>Current version: {_e(doc['currentVersion'])}</p><h3>Services:</h3><ul>{rows}</ul>"
            f"<p><a href='?f=pjson'>JSON</a></p>")
    return _page("Folder: /", body, _crumbs(f"{base}/arcgis/rest/services/x"))


def info_page(doc: dict) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th>{_json_cell(v)}</tr>" for k, v in doc.items())
    return _page("Server Info", f"<table>{rows}</table><p><a href='?f=pjson'>JSON</a></p>")


def root_page(doc: dict, url: str) -> str:
    name = doc["name"]
    links = (f"<p>View in: <a href='{_e(url)}/map'>Map (Leaflet + esri-leaflet)</a> | "
             f"View as: <a href='{_e(url)}?f=pjson'>JSON</a></p>")
    summary = "".join(f"<tr><th>{_e(k)}</th>{_json_cell(doc[k])}</tr>" for k in SUMMARY_FIELDS if k in doc)
    infos = "".join(f"<li>{_e(f['name'])}: {_e(f['description'])}</li>" for f in doc["rasterFunctionInfos"])
    children = " | ".join(f"<a href='{_e(url)}/{path}'>{_e(label)}</a>" for path, label in CHILD_RESOURCES)
    operations = " | ".join(f"<a href='{_e(url)}/{path}'>{_e(label)}</a>" for path, label in OPERATIONS)
    rest = "".join(f"<tr><th>{_e(k)}</th>{_json_cell(v)}</tr>" for k, v in doc.items() if k not in SUMMARY_FIELDS)
    body = (f"{links}<table>{summary}</table><h3>Raster functions</h3><ul>{infos}</ul>"
            f"<p><b>Child Resources:</b> {children}</p><p><b>Supported Operations:</b> {operations}</p>"
            f"<h3>All properties</h3><table>{rest}</table>")
    return _page(f"{name} (ImageServer)", body, _crumbs(url, name))


def _input(name: str, choices, hint: str, value: str) -> str:
    if choices is None:
        field = f"<input type='text' name='{_e(name)}' value='{_e(value)}'>"
    else:
        options = "".join(f"<option{' selected' if c == value else ''} value='{_e(c)}'>{_e(c) or '(default)'}"
                          "</option>" for c in choices)
        field = f"<select name='{_e(name)}'>{options}</select>"
    return f"<tr><th>{_e(name)}</th><td>{field} <span class='hint'>{_e(hint)}</span></td></tr>"


def _form(fields, params, defaults: dict, action: str, forms: tuple[str, ...], button: str) -> str:
    rows = "".join(_input(name, choices, hint, params.get(name) or defaults.get(name, ""))
                   for name, choices, hint in fields)
    current = (params.get("f") or "html").lower()
    f_options = "".join(f"<option{' selected' if f == current else ''}>{f}</option>" for f in forms)
    return (f"<form method='get' action='{_e(action)}'><table>{rows}<tr><th>f</th><td><select name='f'>"
            f"{f_options}</select></td></tr></table><p><button type='submit'>{_e(button)} (GET)</button> "
            f"<button type='submit' formmethod='post'>{_e(button)} (POST)</button></p></form>")


def _error_box(error: dict | None) -> str:
    if error is None:
        return ""
    details = "".join(f"<li>{_e(d)}</li>" for d in error.get("details", []))
    return (f"<div class='error'><b>Error {_e(error.get('code'))}: {_e(error.get('message'))}</b>"
            f"<ul>{details}</ul></div>")


def _extent_text(ext: dict) -> str:
    return f"{ext['xmin']!r}, {ext['ymin']!r}, {ext['xmax']!r}, {ext['ymax']!r}"


def export_form(root: dict, url: str, params, result: dict | None, error: dict | None) -> str:
    """The form with every parameter, prefilled with the service's extent and defaults; then the result."""
    initial = root["initialExtent"]
    defaults = {"bbox": _extent_text(initial).replace(" ", ""), "bboxSR": json.dumps(initial["spatialReference"]),
                "size": ",".join(map(str, DEFAULT_SIZE)), "format": DEFAULT_FORMAT}
    body = _error_box(error) + _form(EXPORT_PARAMETERS, params, defaults, f"{url}/exportImage",
                                     ("html", "image", "json", "pjson", "kmz"), "Export Image")
    if result is not None:
        ext = result["extent"]
        query = {k: params.get(k) for k, _, _ in EXPORT_PARAMETERS if params.get(k) is not None}
        image_url = f"{url}/exportImage?{urlencode(dict(query, f='image'))}"
        body += (f"<h3>Result</h3><table><tr><th>width</th><td id='width'>{result['width']}</td></tr>"
                 f"<tr><th>height</th><td id='height'>{result['height']}</td></tr>"
                 f"<tr><th>extent</th><td id='extent'>{_e(_extent_text(ext))}</td></tr>"
                 f"<tr><th>spatialReference</th>{_json_cell(ext['spatialReference'])}</tr>"
                 f"<tr><th>href</th><td class='v'><a href='{_e(result['href'])}'>{_e(result['href'])}</a></td></tr>"
                 f"<tr><th>as f=image</th><td class='v'><a href='{_e(image_url)}'>{_e(image_url)}</a></td></tr>"
                 f"</table><p><img id='result' src='{_e(result['href'])}' width='{result['width']}' "
                 f"height='{result['height']}' alt='exported image' style='border:1px solid #ccc;max-width:100%;"
                 "height:auto'></p>")
    return _page(f"Export Image ({root['name']})", body, _crumbs(url, root["name"]))


def identify_form(name: str, url: str, params, result: dict | None) -> str:
    body = _form(IDENTIFY_PARAMETERS, params, {"geometryType": POINT}, f"{url}/identify",
                 ("html", "json", "pjson"), "Identify")
    if result is not None:
        body += f"<h3>Result</h3><pre id='result'>{_e(json.dumps(result, indent=2))}</pre>"
    return _page(f"Identify ({name})", body, _crumbs(url, name))


def resource_page(name: str, title: str, doc: dict, url: str) -> str:
    body = f"<p><a href='?f=pjson'>JSON</a></p><pre>{_e(json.dumps(doc, indent=2))}</pre>"
    return _page(f"{title} ({name})", body, _crumbs(url, name))


def legend_page(name: str, doc: dict, url: str) -> str:
    parts = []
    for layer in doc["layers"]:
        rows = "".join(
            f"<tr><td><img alt='' width='{e['width']}' height='{e['height']}' "
            f"src='data:{_e(e['contentType'])};base64,{_e(e['imageData'])}'></td><td>{_e(e['label'])}</td></tr>"
            for e in layer["legend"])
        parts.append(f"<h3>{_e(layer['layerName'])} ({_e(layer['legendType'])})</h3>"
                     f"<table style='border-spacing:0'>{rows}</table>")
    body = "<p><a href='?f=pjson'>JSON</a></p>" + "".join(parts)
    return _page(f"Legend ({name})", body, _crumbs(url, name))


def _script_json(value) -> str:
    """JSON safe to place inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def band_presets(names: list[str]) -> list[tuple[str, str]]:
    """(label, bandIds) choices for the map: all bands, each band alone, and the usual composites by band name."""
    presets = [("Default (service bands)", "")]
    lower = [n.lower() for n in names]

    def find(*candidates):
        return next((lower.index(c) for c in candidates if c in lower), None)

    red, green, blue = find("red"), find("green"), find("blue")
    nir = find("nearinfrared", "nir", "near infrared", "near_infrared")
    if None not in (red, green, blue):
        presets.append(("Natural colour (Red, Green, Blue)", f"{red},{green},{blue}"))
    if None not in (nir, red, green):
        presets.append(("Colour infrared (NIR, Red, Green)", f"{nir},{red},{green}"))
    presets += [(f"{n} only", str(i)) for i, n in enumerate(names)]
    return presets


def map_page(root: dict, item_info: dict, url: str, static: str, token: str | None = None) -> str:
    """Leaflet + esri-leaflet `L.esri.imageMapLayer` over the service, everything served from the package; the
    page's own calls carry ``token`` when the server controls access."""
    name = root["name"]
    (west, south), (east, north) = item_info["extent"]
    config = {
        "url": url,
        "bounds": [[south, west], [north, east]],
        "interpolation": INTERPOLATION_OF_DEFAULT.get(root["defaultResamplingMethod"], "RSP_BilinearInterpolation"),
        "functions": [f["name"] for f in root["rasterFunctionInfos"]],
        "bands": band_presets(root["bandNames"]),
    }
    # Start a multispectral service in natural colour when its band names allow it (else the service's bands).
    config["initialBands"] = next((ids for label, ids in config["bands"] if label.startswith("Natural")), "")
    # A mosaic dataset's methods (the root's short names, which mosaicRule accepts) and a time-aware service's span.
    config["mosaicMethods"] = [m for m in root["allowedMosaicMethods"].split(",") if m in MAP_MOSAIC_METHODS]
    config["timeExtent"] = (root.get("timeInfo") or {}).get("timeExtent")
    config["token"] = token
    interpolations = "".join(f"<option>{v}</option>" for v in INTERPOLATION_OF_DEFAULT.values())
    return f"""<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(name)} map</title>
<link rel='stylesheet' href='{_e(static)}/{VENDOR["leaflet_css"]}'>
<script src='{_e(static)}/{VENDOR["leaflet_js"]}'></script>
<script src='{_e(static)}/{VENDOR["esri_leaflet_js"]}'></script>
<style>html,body{{margin:0;height:100%;font:13px Verdana,sans-serif}}#map{{position:absolute;top:0;bottom:0;
left:0;right:0;background:#dde3ea}}.panel{{background:#fff;padding:8px 10px;border-radius:4px;
box-shadow:0 1px 5px rgba(0,0,0,.4);line-height:1.9}}.panel select{{max-width:16em}}
.legend img{{display:block}}.legend td{{padding:0 6px 0 0}}</style></head><body>
<div id='map'></div>
<script>
const CONFIG = {_script_json(config)};
const TIME_WINDOW_DAYS = 200;
const map = L.map('map');
map.fitBounds(CONFIG.bounds);
const options = {{url: CONFIG.url, format: 'jpgpng', interpolation: CONFIG.interpolation}};
if (CONFIG.initialBands) {{ options.bandIds = CONFIG.initialBands; }}
if (CONFIG.token) {{ options.token = CONFIG.token; }}
const layer = L.esri.imageMapLayer(options).addTo(map);
layer.bindPopup(function (error, results) {{
  if (error) {{ return 'identify failed: ' + error.message; }}
  return 'Value: ' + results.pixel.properties.value;
}});
L.rectangle(CONFIG.bounds, {{color: '#3a5a80', weight: 1, fill: false}}).addTo(map);

function option(value, label, selected) {{
  const o = document.createElement('option');
  o.value = value; o.textContent = label; o.selected = !!selected; return o;
}}
const Controls = L.Control.extend({{
  onAdd: function () {{
    const div = L.DomUtil.create('div', 'panel');
    div.innerHTML = "<b>{_e(name)}</b> &middot; <a href='" + CONFIG.url + "'>service</a><br>" +
      "Rendering rule <select id='rule'></select><br>" +
      "Bands <select id='bands'></select><br>" +
      "Interpolation <select id='interpolation'>{interpolations}</select>" +
      (CONFIG.mosaicMethods.length ? "<br>Mosaic method <select id='mosaic'></select>" : "") +
      (CONFIG.timeExtent ? "<br>Until <input type='range' id='time'> <span id='date'></span>" +
                           " (the " + TIME_WINDOW_DAYS + " days before)" : "") +
      "<div class='legend' id='legend'></div>";
    L.DomEvent.disableClickPropagation(div);
    return div;
  }}
}});
new Controls({{position: 'topright'}}).addTo(map);
const rule = document.getElementById('rule'), bands = document.getElementById('bands'),
      interp = document.getElementById('interpolation');
CONFIG.functions.forEach(function (f, i) {{ rule.appendChild(option(f, f, i === 0)); }});
CONFIG.bands.forEach(function (b) {{ bands.appendChild(option(b[1], b[0], b[1] === CONFIG.initialBands)); }});
interp.value = CONFIG.interpolation;
rule.onchange = function () {{
  layer.setRenderingRule(rule.value === 'None' ? null : {{rasterFunction: rule.value}});
  showLegend();
}};
if (CONFIG.mosaicMethods.length) {{
  const mosaic = document.getElementById('mosaic');
  CONFIG.mosaicMethods.forEach(function (m) {{ mosaic.appendChild(option(m, m, m === 'None')); }});
  mosaic.onchange = function () {{ layer.setMosaicRule({{mosaicMethod: mosaic.value}}); }};
}}
if (CONFIG.timeExtent) {{
  const DAY = 86400000, slider = document.getElementById('time'), label = document.getElementById('date');
  slider.min = CONFIG.timeExtent[0]; slider.max = CONFIG.timeExtent[1]; slider.step = DAY;
  slider.value = CONFIG.timeExtent[1];
  const showTime = function () {{
    const until = Number(slider.value);
    label.textContent = new Date(until).toISOString().slice(0, 10);
    layer.setTimeRange(new Date(until - TIME_WINDOW_DAYS * DAY), new Date(until));
  }};
  slider.onchange = showTime;
  showTime();
}}
bands.onchange = function () {{
  if (bands.value) {{ layer.setBandIds(bands.value); }} else {{ delete layer.options.bandIds; layer._update(); }}
  showLegend();
}};
interp.onchange = function () {{ layer.options.interpolation = interp.value; layer._update(); }};
function showLegend() {{
  const q = 'f=json' + (CONFIG.token ? '&token=' + encodeURIComponent(CONFIG.token) : '') + (bands.value ? '&bandIds=' + encodeURIComponent(bands.value) : '') +
            (rule.value && rule.value !== 'None' ? '&renderingRule=' +
             encodeURIComponent(JSON.stringify({{rasterFunction: rule.value}})) : '');
  fetch(CONFIG.url + '/legend?' + q).then(function (r) {{ return r.json(); }}).then(function (doc) {{
    const el = document.getElementById('legend');
    el.innerHTML = '';
    if (!doc.layers) {{ return; }}
    const table = document.createElement('table');
    table.style.borderSpacing = '0';
    doc.layers[0].legend.forEach(function (e) {{
      const row = table.insertRow(), img = new Image();
      img.src = 'data:' + e.contentType + ';base64,' + e.imageData;
      row.insertCell().appendChild(img);
      row.insertCell().textContent = e.label;
    }});
    el.appendChild(table);
  }});
}}
showLegend();
</script></body></html>"""
