"""Hypothesis over exportImage and identify query strings: whatever arrives, the gateway answers within a timeout with
an image, a page, or JSON that is not a 500, and the process stays up.  Bounded in examples so it runs in seconds."""
from __future__ import annotations

import json
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SERVICE = "/arcgis/rest/services/{}/ImageServer"
# 300 examples per resource in the suite; `make fuzz` runs 50 000 per resource (100 000 requests).
FUZZ = settings(max_examples=int(os.environ.get("IMGSVC_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow], derandomize=True)
TIMEOUT = httpx.Timeout(20.0)

finite = st.floats(min_value=-2e7, max_value=2e7, allow_nan=False)
wild = st.one_of(st.floats(), st.integers(min_value=-2**70, max_value=2**70))
number_text = st.one_of(finite.map(repr), wild.map(str), st.sampled_from(["", "null", "-0", "1e400", "0x10"]))
csv = st.lists(number_text, min_size=0, max_size=6).map(",".join)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), wild, st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(["wkid", "latestWkid", "wkt", "x", "y", "xmin",
                                                                "ymin", "xmax", "ymax", "rasterFunction",
                                                                "rasterFunctionArguments", "mosaicMethod",
                                                                "spatialReference"]), children, max_size=5)),
    max_leaves=12,
).map(lambda v: json.dumps(v))
junk = st.text(max_size=40)
any_value = st.one_of(csv, json_values, junk, number_text)
# Text that once reached a file or a 500 (issue 13): grids named by path, nesting past the limit, degenerate boxes.
hostile = st.sampled_from(['{"wkt": "+proj=hgridshift +grids=/etc/passwd"}', '{"wkt": "+init=/etc/passwd:x"}',
                           '{"a": ' * 40 + "1" + "}" * 40, '{"rasterFunction": "None", "x": NaN}',
                           "0,0,1e-300,1e-300", "-1e308,-1e308,1e308,1e308"])
sr_value = st.one_of(st.sampled_from(["3857", "102100", "4326", "32611", "0", "-1", "999999", '{"wkid": 3857}',
                                      '{"wkt": "nonsense"}', '{"latestWkid": 4326}']), any_value, hostile)
size_value = st.one_of(st.tuples(st.integers(-2, 64), st.integers(-2, 64)).map(lambda t: f"{t[0]},{t[1]}"), junk)
bbox_value = st.one_of(st.sampled_from(["-13167000,4388000,-13151000,4400000", "380000,4050000,400000,4070000",
                                        "-180,-90,180,90", "0,0,0,0"]),
                       st.tuples(finite, finite, finite, finite).map(lambda t: ",".join(map(repr, t))), any_value,
                       hostile)
enum_value = st.one_of(st.sampled_from(["jpgpng", "png", "png8", "png24", "png32", "jpg", "bmp", "gif", "tiff",
                                        "bip", "bsq", "lerc", "U8", "F32", "S16", "C64", "RSP_NearestNeighbor",
                                        "RSP_CubicConvolution", "esriNoDataMatchAll", "LZ77", "JPEG"]), junk)
f_value = st.sampled_from(["image", "json", "pjson", "html", "kmz", "lyr", "", "IMAGE"])

EXPORT_PARAMS = st.fixed_dictionaries(
    {"f": f_value},
    optional={"bbox": bbox_value, "bboxSR": sr_value, "imageSR": sr_value, "size": size_value,
              "format": enum_value, "pixelType": enum_value, "interpolation": enum_value,
              "noData": csv, "noDataInterpretation": enum_value, "compression": enum_value,
              "compressionQuality": number_text, "compressionTolerance": number_text, "lercVersion": number_text,
              "bandIds": csv, "time": csv, "mosaicRule": st.one_of(json_values, hostile),
              "renderingRule": st.one_of(json_values, hostile), "datumTransformation": st.one_of(any_value, hostile), "sliceId": number_text, "adjustAspectRatio": junk,
              "validateExtent": junk, "callback": st.sampled_from(["cb", "a.b[0]", "alert(1)//", ""]),
              "transparent": junk, junk.filter(lambda k: k.lower() not in ("f", "size")): any_value})
IDENTIFY_PARAMS = st.fixed_dictionaries(
    {"f": f_value},
    optional={"geometry": st.one_of(st.tuples(finite, finite).map(lambda t: f"{t[0]!r},{t[1]!r}"), csv, json_values,
                                    st.builds(lambda x, y, sr: json.dumps({"x": x, "y": y, "spatialReference": sr}),
                                              wild, wild, st.sampled_from([{"wkid": 4326}, {"wkid": 3857},
                                                                           {"wkid": 12}, {}, {"wkt": "x"}]))),
              "geometryType": st.one_of(st.sampled_from(["esriGeometryPoint", "esriGeometryPolygon"]), junk),
              "pixelSize": any_value, "mosaicRule": json_values, "renderingRule": json_values,
              "renderingRules": junk, "time": csv, "returnGeometry": junk, "returnCatalogItems": junk,
              "maxItemCount": number_text})


def check(reply: httpx.Response, query: dict) -> None:
    assert reply.status_code == 200, (reply.status_code, query, reply.text[:300])
    kind = reply.headers["content-type"].split(";")[0]
    if kind.startswith("image/") or kind in ("application/vnd.google-earth.kmz", "application/octet-stream"):
        # pictures, TIFF, KMZ, and the raw formats (bip, bsq, lerc) travel as octet-stream
        assert (query.get("f") or "").lower() in ("image", "kmz"), query
        return
    if kind == "text/html":
        assert (query.get("f") or "html").lower() == "html", query
        return
    text = reply.text
    if kind == "application/javascript":
        callback = query["callback"]
        assert text.startswith(callback + "(") and text.endswith(");")
        text = text[len(callback) + 1:-2]
    else:
        assert kind == "application/json", (kind, query)
    doc = json.loads(text)
    if "error" in doc:
        assert doc["error"]["code"] != 500, (query, doc)
        assert all(isinstance(d, str) for d in doc["error"]["details"])


@pytest.fixture(scope="module")
def server_memory(gateway_url):
    """The `imgsvc serve` process's resident memory, sampled every second while this module fuzzes it."""
    from bench.soak import MemoryTrace
    from imgsvc.loadtest import processes

    with MemoryTrace(processes.listening_pids(int(gateway_url.rsplit(":", 1)[1])), interval=1.0) as trace:
        yield trace


@pytest.fixture(scope="module")
def client(gateway_url, server_memory):
    with httpx.Client(base_url=gateway_url, timeout=TIMEOUT) as c:
        yield c


@pytest.mark.parametrize("resource, queries", [("exportImage", EXPORT_PARAMS), ("identify", IDENTIFY_PARAMS)])
@FUZZ
@given(data=st.data(), service=st.sampled_from(["dem", "ms"]), post=st.booleans())
def test_fuzz_query_strings(client, resource, queries, data, service, post):
    query = data.draw(queries)
    url = SERVICE.format(service) + f"/{resource}"
    reply = client.post(url, data=query) if post else client.get(url, params=query)
    check(reply, query)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(raw=st.binary(max_size=120))
def test_fuzz_raw_query_bytes(client, raw):
    """Bytes as they come off the wire, percent-encoded or not, on both endpoints."""
    from urllib.parse import quote_from_bytes

    for resource in ("exportImage", "identify"):
        reply = client.get(SERVICE.format("dem") + f"/{resource}?" + quote_from_bytes(raw, safe="=&,"))
        assert reply.status_code == 200
        assert reply.headers["content-type"].split(";")[0] in ("application/json", "text/html", "image/jpeg",
                                                               "image/png")


def test_the_process_is_still_up_after_the_fuzzing_within_its_memory(client, server_memory):
    # Runs after the fuzz tests in this module (pytest keeps file order).
    assert client.get(SERVICE.format("dem"), params={"f": "json"}).json()["name"] == "dem"
    rss = [value / 2**20 for _, value in server_memory.points]
    print(f"\nserver RSS over {len(rss)} s of fuzzing: {rss[0]:.0f} MiB at the start, {max(rss):.0f} peak, "
          f"{rss[-1]:.0f} at the end")
    # Bounded by the server's own bounds (response cache 256 MB, GDAL's cache 256 MB, 64 open datasets, the
    # exports in flight: one client here) with room to spare, whatever the run's length.
    assert max(rss) < 1536
