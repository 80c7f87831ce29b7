"""The REST gateway: the ArcGIS query-string dialect translated to the gRPC contract, and replies back."""
