"""python -m tests.provider_standin --port 8025 --latency 0.08 --rate-limit 14: the stand-in as
its own process (the benchmarks), with any `Behaviour` field as an option."""

import argparse
import asyncio
from dataclasses import fields

from .account import Behaviour
from .server import StandIn


def main() -> None:
    parser = argparse.ArgumentParser(description="A local stand-in for email providers' HTTP APIs.")
    parser.add_argument("--port", type=int, default=8025)
    for spec in fields(Behaviour):
        if spec.type in ("bool", bool):
            parser.add_argument(f"--{spec.name.replace('_', '-')}", type=lambda v: v.lower() in ("1", "true", "yes"), default=spec.default)
        else:
            parser.add_argument(f"--{spec.name.replace('_', '-')}", type=float if spec.type in ("float", float) else int, default=spec.default)
    args = parser.parse_args()
    behaviour = Behaviour(**{spec.name: getattr(args, spec.name) for spec in fields(Behaviour)})
    try:
        asyncio.run(StandIn(args.port, behaviour).serve_forever())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
