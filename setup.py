"""Build the Cython kernels (every ext/*.pyx becomes imgsvc._kernels.<name>) and generate the gRPC code.

The protobuf modules are generated here, at build time, from protos/ into imgsvc/v1/ so they are never committed.
"""
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = Path(__file__).parent


def generate_protos() -> None:
    from grpc_tools import protoc
    import grpc_tools

    proto_include = str(Path(grpc_tools.__file__).parent / "_proto")
    for proto in sorted((ROOT / "protos").rglob("*.proto")):
        rel = proto.relative_to(ROOT / "protos")
        generated = ROOT / rel.with_name(rel.stem + "_pb2_grpc.py")
        if generated.exists() and generated.stat().st_mtime >= proto.stat().st_mtime:
            continue  # up to date; rewriting would race with processes importing it
        args = ["protoc", f"-I{ROOT / 'protos'}", f"-I{proto_include}", f"--python_out={ROOT}",
                f"--pyi_out={ROOT}", f"--grpc_python_out={ROOT}", str(rel)]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {rel}")


def kernel_extensions() -> list[Extension]:
    return [
        Extension(
            f"imgsvc._kernels.{pyx.stem}",
            [str(pyx.relative_to(ROOT))],
            include_dirs=[numpy.get_include(), str(ROOT / "ext")],
            extra_compile_args=["-O3"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for pyx in sorted((ROOT / "ext").glob("*.pyx"))
    ]


generate_protos()
setup(
    ext_modules=cythonize(
        kernel_extensions(),
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
        include_path=[str(ROOT / "ext")],
    ),
)
