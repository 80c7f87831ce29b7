#!/bin/sh
# Sets up the real clients the test_clients_* tests drive; idempotent and quick when nothing changed.
#   Chromium, gdal-bin and PostgreSQL (Debian packages), the npm clients and bundles, the ArcGIS API for Python venv.
# Everything it builds lands in tests/clients/build/ and tests/clients/node_modules/ (both git-ignored).
set -eu
cd "$(dirname "$0")"
BUILD=build
mkdir -p "$BUILD"

# A Debian package, installed when its program is missing (as root; anyone else is told the command).
debian_package() {  # <program path> <package>
    if [ ! -x "$1" ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "setup.sh: $1 is missing; install it as root: apt-get update && apt-get install -y $2" >&2
            exit 1
        fi
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2"
    fi
}

# Debian's chromium: the browser the page tests launch through playwright-core (never a downloaded one).
debian_package /usr/bin/chromium chromium
# Debian's gdal-bin: gdaldem, the reference tests/test_functions_surface.py compares the surface functions with.
debian_package /usr/bin/gdaldem gdal-bin
# Debian's PostgreSQL 15: the server tests/postgres.py starts for the catalog on PostgreSQL (run as the postgres
# user the package creates; its cluster is never started, the tests make their own in a temporary directory).
debian_package /usr/lib/postgresql/15/bin/postgres postgresql-15

# npm clients, exactly as locked: reinstalled only when package-lock.json changed since the last install.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.imgsvc-lock-sum 2>/dev/null || true)" != "$lock_sum" ]; then
    npm ci --no-audit --no-fund --loglevel=error
    echo "$lock_sum" > node_modules/.imgsvc-lock-sum
fi

# Page bundles: rebuilt when a page script or the lock changed.
sources_sum=$(cat package-lock.json src/*.js | sha256sum | cut -d' ' -f1)
if [ "$(cat "$BUILD/.sources-sum" 2>/dev/null || true)" != "$sources_sum" ]; then
    rm -rf "$BUILD/leaflet.js" "$BUILD/openlayers.js" "$BUILD/arcgis"
    node_modules/.bin/esbuild src/leaflet.js src/openlayers.js --bundle --format=iife --outdir="$BUILD" --log-level=warning
    # The SDK loads most of itself on demand: ES modules with code splitting.
    node_modules/.bin/esbuild src/arcgis.js --bundle --format=esm --splitting --minify --outdir="$BUILD/arcgis" \
        --log-level=warning
    echo "$sources_sum" > "$BUILD/.sources-sum"
fi

# ArcGIS API for Python in a venv of its own (its dependency tree is large: pandas, pyarrow, matplotlib, ...).
# arcgis 2.4.4 imports six without declaring it.
ARCGIS_REQUIREMENTS="arcgis==2.4.4 six==1.17.0"
if [ "$(cat "$BUILD/venv-arcgis/.imgsvc-requirements" 2>/dev/null || true)" != "$ARCGIS_REQUIREMENTS" ]; then
    rm -rf "$BUILD/venv-arcgis"
    python3 -m venv "$BUILD/venv-arcgis"
    # shellcheck disable=SC2086
    "$BUILD/venv-arcgis/bin/python" -m pip install --quiet $ARCGIS_REQUIREMENTS
    echo "$ARCGIS_REQUIREMENTS" > "$BUILD/venv-arcgis/.imgsvc-requirements"
fi
