"""``maskdpo serve``: run the gRPC service.

    maskdpo serve [--config maskdpo.toml] [--host 127.0.0.1] [--port 50051] [--ray-address ADDR]
                  [--data-dir var] [--judge heuristic --judge kb] [--default-judge heuristic]

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
    parser.add_argument("--ready-file", help="write the bound port here once serving (for scripts)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config, host=args.host, port=args.port, ray_address=args.ray_address,
                                 data_dir=args.data_dir, judges=args.judges, default_judge=args.default_judge)
    except (ValidationError, OSError, ValueError) as exc:
        print(f"maskdpo serve: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    from maskdpo.server.app import serve_forever

    asyncio.run(serve_forever(settings, args.ready_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
