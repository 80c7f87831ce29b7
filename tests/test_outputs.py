"""The f=json output directory: files written atomically, served only by their own names, expired by age."""
import os
import time

from imgsvc.rest.outputs import OutputStore


def test_save_serve_and_expire(tmp_path):
    store = OutputStore(tmp_path, ttl_seconds=60)
    rel = store.save("dem", b"\x89PNG...", "png")
    folder, name = rel.split("/")
    assert folder == "dem_ImageServer" and name.startswith("_ags_") and name.endswith(".png")
    path = store.path(folder, name)
    assert path is not None and path.read_bytes() == b"\x89PNG..."
    assert store.expire() == 0  # young files stay
    old = time.time() - 120
    os.utime(path, (old, old))
    assert store.expire() == 1 and store.path(folder, name) is None


def test_only_names_it_wrote_are_served(tmp_path):
    store = OutputStore(tmp_path)
    (tmp_path / "secret.txt").write_text("x")
    assert store.path("..", "secret.txt") is None
    assert store.path("dem_ImageServer", "../../secret.txt") is None
    assert store.path("dem_ImageServer", "_ags_" + "0" * 36 + ".png") is None  # well-formed but absent


def test_expired_href_is_an_envelope_over_http(http):
    doc = http.get("/arcgis/rest/services/dem/ImageServer/exportImage",
                   params={"bbox": "384000,4055000,396000,4064000", "size": "32,32", "f": "json"}).json()
    assert http.get(doc["href"]).status_code == 200
    missing = http.get(doc["href"].rsplit("/", 1)[0] + "/_ags_" + "0" * 36 + ".png")
    assert missing.headers["content-type"] == "application/json" and missing.json()["error"]["code"] == 404
