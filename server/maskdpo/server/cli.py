"""``maskdpo serve``: run the gRPC service.

    maskdpo serve [--config maskdpo.toml] [--host 127.0.0.1] [--port 50051] [--ray-address ADDR]
                  [--data-dir var] [--judge heuristic --judge kb] [--default-judge heuristic]
                  [--model toy=toyworld/maskdpo/toyworld/model --model smollm2=builtin:smollm2] [--default-model toy]

Settings come from the config file, then ``MASKDPO_*`` environment variables, then these flags.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from maskdpo.server.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="maskdpo serve", description="Run the maskdpo gRPC service.")
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--ray-address", help="join this Ray cluster instead of starting a local one")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--judge", action="append", dest="judges", help="judge backend to host (repeat)")
    parser.add_argument("--default-judge")
    parser.add_argument("--model", action="append", dest="models", metavar="NAME=FOLDER",
                        help="serve a model for generation (repeat); FOLDER may be builtin:smollm2")
    parser.add_argument("--default-model")
    parser.add_argument("--ready-file", help="write the bound port here once serving (for scripts)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        models = None
        if args.models:
            pairs = [m.partition("=") for m in args.models]
            bad = [m for m, (name, eq, folder) in zip(args.models, pairs, strict=True) if not (name and eq and folder)]
            if bad:
                raise ValueError(f"--model {bad[0]!r}: expected NAME=FOLDER")
            models = {name: folder for name, _, folder in pairs}
        settings = load_settings(args.config, host=args.host, port=args.port, ray_address=args.ray_address,
                                 data_dir=args.data_dir, judges=args.judges, default_judge=args.default_judge,
                                 models=models, default_model=args.default_model)
    except (ValidationError, OSError, ValueError) as exc:
        print(f"maskdpo serve: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    from maskdpo.server.app import serve_forever
    from maskdpo.server.ownership import StartupError

    try:
        asyncio.run(serve_forever(settings, args.ready_file))
    except StartupError as exc:
        print(f"maskdpo serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
