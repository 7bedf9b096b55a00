"""Regenerates the committed Python code of the maskdpo.v1 contract.

Run: ``python protos/generate.py`` (writes ``protos/maskdpo/v1/*_pb2.py``, ``*_pb2.pyi``, ``*_pb2_grpc.py``)
or ``python protos/generate.py --check`` (exit 1 when the committed code differs from a fresh generation;
CI runs this through the test suite).

The google/api, google/rpc and google/longrunning .proto files come from the installed
googleapis-common-protos wheel, and google/protobuf from grpcio-tools: nothing is copied into the repo.
The wheel ships the LRO contract as ``operations_proto.proto`` but registers it at run time under its
canonical name ``google/longrunning/operations.proto``; generation exposes it under that name (in a
temporary include folder) so the generated code's dependency resolves against the runtime module.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import google.api
import grpc_tools
from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parent
PACKAGE = PROTOS / "maskdpo" / "v1"


def generate(out_dir: Path) -> list[Path]:
    """Generate every .proto of the package into ``out_dir``; return the written files."""
    googleapis = Path(google.api.__path__[0]).parent.parent  # site-packages holding google/api/*.proto
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    lro = out_dir / "_include" / "google" / "longrunning"
    lro.mkdir(parents=True)
    shutil.copy(googleapis / "google" / "longrunning" / "operations_proto.proto", lro / "operations.proto")
    sources = sorted(str(p.relative_to(PROTOS)) for p in PACKAGE.glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{out_dir / '_include'}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_dir / "maskdpo" / "v1").glob("*_pb2*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the committed code")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        produced = generate(Path(tmp))
        if args.check:
            committed = sorted(PACKAGE.glob("*_pb2*"))
            names = {p.name for p in produced}
            stale = [p.name for p in committed if p.name not in names]
            differ = [p.name for p in produced if not (PACKAGE / p.name).exists()]
            differ += [p.name for p in produced if (PACKAGE / p.name).exists()
                       and not filecmp.cmp(p, PACKAGE / p.name, shallow=False)]
            if stale or differ:
                print(f"generated code is out of date: differ={differ} stale={stale}; "
                      "run `python protos/generate.py`", file=sys.stderr)
                return 1
            print(f"generated code up to date ({len(produced)} files)")
            return 0
        for old in PACKAGE.glob("*_pb2*"):
            old.unlink()
        for path in produced:
            shutil.copy2(path, PACKAGE / path.name)
        print(f"wrote {len(produced)} files into {PACKAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
