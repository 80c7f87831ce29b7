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


def test_the_quota_makes_room_by_deleting_the_oldest_files(tmp_path):
    store = OutputStore(tmp_path, max_bytes=1000)
    saved = []
    for i in range(5):
        saved.append(store.save("dem" if i % 2 else "ms", bytes(300), "png"))
        path = store.path(*saved[-1].split("/"))
        os.utime(path, (1000 + i, 1000 + i))  # distinct ages, oldest first
    kept = [rel for rel in saved if store.path(*rel.split("/")) is not None]
    assert kept == saved[-3:]  # 3 x 300 bytes fit in 1000, across the services' folders
    store.save("dem", bytes(2000), "tif")  # larger than the quota alone: everything else makes way for it
    assert [rel for rel in saved if store.path(*rel.split("/")) is not None] == []
    assert sum(p.stat().st_size for p in tmp_path.glob("*/_ags_*")) == 2000


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
