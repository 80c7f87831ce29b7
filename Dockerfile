# imgsvc in a container (docs/deploy.md): `docker build -t imgsvc .`, then
#   docker run -p 50051:50051 -p 8080:8080 -v "$PWD/data:/data" imgsvc
# serves the catalog /data/catalog.sqlite (register rasters with `docker run -v ... imgsvc add NAME /data/...`).
# Two stages: the build one has a compiler and compiles the Cython kernels and the gRPC code with the package's own
# setup.py, as `make build` does; the runtime one gets only the finished virtual environment.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The compiler comes from the base image's Debian release; its version follows that release, not a pin.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
# The same build requirements as the Makefile's; the venv is copied whole into the runtime stage, so it lives at
# the path it will run from.
RUN python -m venv /opt/imgsvc \
 && /opt/imgsvc/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/imgsvc/bin/pip install --no-cache-dir "setuptools>=68" wheel "cython>=3.0" "numpy>=1.26" "grpcio-tools>=1.60"
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY protos protos
COPY ext ext
COPY imgsvc imgsvc
# setup.py generates imgsvc/v1/*_pb2*.py from protos/ and compiles every ext/*.pyx into imgsvc._kernels; the import
# afterwards (-P: from the installed package, not the sources here) fails the build if either is missing.
RUN /opt/imgsvc/bin/pip install --no-cache-dir --no-build-isolation . \
 && /opt/imgsvc/bin/python -P -c "import imgsvc.kernels, imgsvc.v1.image_service_pb2_grpc"

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric id, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --system --gid 10001 imgsvc \
 && useradd --system --uid 10001 --gid imgsvc --home-dir /data --no-create-home imgsvc \
 && mkdir -p /data \
 && chown imgsvc:imgsvc /data
COPY --from=build /opt/imgsvc /opt/imgsvc
ENV PATH=/opt/imgsvc/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMGSVC_CATALOG=/data/catalog.sqlite
# The catalog and the rasters it names; with the catalog on PostgreSQL and the rasters in S3 nothing is mounted
# here (IMGSVC_CATALOG=postgresql://..., AWS_* variables).
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 50051 8080
# gRPC health of the whole server (""), the same check Kubernetes' gRPC probes make; exit 1 unless SERVING.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; s = g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')).Check(h.HealthCheckRequest(service=''), timeout=4).status; sys.exit(0 if s == h.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["imgsvc"]
CMD ["serve", "--grpc", "0.0.0.0:50051", "--http", "0.0.0.0:8080", "--output-dir", "/tmp/imgsvc/output"]
