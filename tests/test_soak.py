"""The soak's short version (bench/soak.py; `make soak` runs it for ten minutes): the peak of a real `imgsvc serve`
measured in closed loop, then open loop at a share of it, with the server's memory traced all along."""
from __future__ import annotations

from bench.soak import open_loop_soak
from imgsvc.loadtest import processes
from imgsvc.loadtest.mix import Mix


def test_a_short_open_loop_soak_at_a_share_of_the_peak(gateway_url):
    pids = processes.listening_pids(int(gateway_url.rsplit(":", 1)[1]))
    result = open_loop_soak(f"{gateway_url}/arcgis/rest/services/dem/ImageServer", "dem",
                            Mix(sizes=((96, 64),), formats=("png",), scales=(1.0, 2.0)), pids, seconds=4.0,
                            concurrency=2, load=0.5, peak_seconds=2.0, progress=False)
    assert pids and result["peak_rps"] > 0 and result["rate_rps"] == 0.5 * result["peak_rps"]
    assert result["errors"] == 0 and result["requests"] > 0
    assert len(result["p99_ms_per_minute"]) == 1 and result["p99_ms_per_minute"][0] > 0
    assert len(result["rss"]) >= 4 and all(rss > 10 * 2**20 for _, rss in result["rss"])
    assert result["rss_growth_after_warmup"] > 0
