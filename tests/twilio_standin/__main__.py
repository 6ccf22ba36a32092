"""python -m tests.twilio_standin --port 8026 --latency 0.2 --rate-limit 1: the stand-in as its own
process (benchmarks, by hand), with any `TwilioBehaviour` field as an option."""

import argparse
import asyncio
from dataclasses import fields

from .account import TwilioBehaviour
from .server import TwilioStandIn


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.twilio_standin", description="A local stand-in of Twilio's Messages API."
    )
    parser.add_argument("--port", type=int, default=8026)
    for spec in fields(TwilioBehaviour):
        option = f"--{spec.name.replace('_', '-')}"
        if spec.name in ("unsubscribed", "landlines"):
            parser.add_argument(option, type=lambda v: [n.strip() for n in v.split(",") if n.strip()], default=[])
        elif spec.type in ("bool", bool):
            parser.add_argument(option, type=lambda v: v.lower() in ("1", "true", "yes"), default=spec.default)
        else:
            parser.add_argument(option, type=float if spec.type in ("float", float) else int, default=spec.default)
    args = parser.parse_args()
    behaviour = TwilioBehaviour(**{spec.name: getattr(args, spec.name) for spec in fields(TwilioBehaviour)})
    try:
        asyncio.run(TwilioStandIn(args.port, behaviour).serve_forever())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
