"""The generated protobuf code is a transport type: only the doors (the gRPC package, the REST gateway, the
Python client and the load-test harness's client door) may import it; the core works with its own values."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import imgsvc

PACKAGE = Path(imgsvc.__file__).parent
GENERATED = PACKAGE / "v1"
DOORS = (PACKAGE / "grpc", PACKAGE / "rest", PACKAGE / "client.py", PACKAGE / "loadtest" / "doors.py")
CONTRACT = re.compile(r"image_service_pb2|imgsvc.v1")


def sources() -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py")) if GENERATED not in path.parents]


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:  # relative: from this module's package, or one above per extra dot
                package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-node.level]
                base = ".".join((*package, node.module) if node.module else package)
            modules.update(f"{base}.{alias.name}" for alias in node.names)
    return modules


def in_a_door(path: Path) -> bool:
    return any(path == door or door in path.parents for door in DOORS)


def test_only_the_doors_import_the_generated_code():
    importers = {path.relative_to(PACKAGE.parent).as_posix() for path in sources()
                 if any(m == "imgsvc.v1" or m.startswith("imgsvc.v1.") for m in imported_modules(path))}
    assert importers and not {p for p in importers if not in_a_door(PACKAGE.parent / p)}


def test_only_the_doors_name_the_generated_code():
    # What `grep -rln "image_service_pb2\|imgsvc.v1" imgsvc` lists, less the generated package itself.
    naming = [path for path in sources() if CONTRACT.search(path.read_text())]
    assert naming and not [path.relative_to(PACKAGE.parent).as_posix() for path in naming if not in_a_door(path)]
