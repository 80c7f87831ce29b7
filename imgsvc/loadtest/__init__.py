"""`imgsvc loadtest`: drive a running imgsvc (or any ArcGIS ImageServer) with exportImage requests and report what
it sustains.

The stages, one module each: ``target`` (where to send, and whether that is allowed), ``mix`` (which requests),
``doors`` (how one request travels: gRPC or REST), ``drivers`` (when requests are sent: closed loop, open loop,
step), ``recording`` (latencies into HDR histograms), ``processes`` (the server's CPU and memory from /proc),
``report`` (text, JSON, HTML, comparison) and ``runner`` (the command's options turned into a run).
"""
