"""Command line: serve the mock on a production WSGI server (waitress) and print its URL and a usable key."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

from . import config as cfg

NEEDS = ("flask", "waitress")  # the `mock` extra of the wheel
EXTRA_HINT = "pip install 'picwish-visual[mock]'"


def _port(text: str) -> int:
    """0 (a free port) or 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 65535; got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 (a free port) to 65535; got {port}")
    return port


def _prog() -> str:
    """How the user started it: the console script's name, else `python -m <this package>`."""
    name = Path(sys.argv[0]).name
    return name if name and not name.startswith("__main__") else f"python -m {__package__}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog=_prog(), description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--host", default=env.get(cfg.ENV_HOST, "127.0.0.1"))
    parser.add_argument("--port", type=_port, default=env.get(cfg.ENV_PORT, "8080"), help="0 picks a free port")
    parser.add_argument("--api-key", action="append", dest="api_keys", help="repeatable; default mock-key-1")
    parser.add_argument("--qps", type=float, help="per key, rolling one-second window (default 2; 0 = no limit)")
    parser.add_argument("--result-ttl", type=float, dest="result_ttl_s", help="seconds result links live (3600)")
    parser.add_argument("--time-scale", type=float, help="multiplies every processing time (0.1 = ten times faster)")
    parser.add_argument(
        "--admin",
        action="store_true",
        default=None,
        help="serve the scenario API at /__mock__/ (off by default: it resets the mock and shows live result links)",
    )
    parser.add_argument("--no-admin", action="store_false", dest="admin")
    parser.add_argument("--errors-in-body", action="store_true", default=None, help="errors as HTTP 200 + status")
    parser.add_argument("--public-url", help="base of result links (default: the URL a request came in on)")
    parser.add_argument(
        "--render-max-side", type=int, help="render results from inputs scaled to this longer side (default: full)"
    )
    parser.add_argument("--threads", type=int, default=16)
    taping = parser.add_mutually_exclusive_group()
    taping.add_argument("--record", type=Path, metavar="DIR", help="proxy to --upstream and write a cassette to DIR")
    taping.add_argument("--replay", type=Path, metavar="DIR", help="answer from the cassette in DIR")
    parser.add_argument("--upstream", help="the API --record sends requests on to (e.g. https://techhk.aoscdn.com)")
    args = parser.parse_args(argv)
    if args.record and not args.upstream:
        parser.error("--record needs --upstream URL: the API whose answers it records")
    return args


def _app(args: argparse.Namespace, config: cfg.MockConfig) -> Any:
    """The mock itself, or a recorder or player of the real API's answers (mock_server.cassette)."""
    from . import cassette
    from .app import create_app

    if args.record:
        return cassette.recorder(args.record, args.upstream)
    if args.replay:
        return cassette.player(args.replay)
    return create_app(config)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("picwish-visual")
    except metadata.PackageNotFoundError:
        return "(checkout)"


def main(argv: list[str] | None = None) -> None:
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        sys.stderr.write(f"{_prog()}: the mock server needs {' and '.join(missing)}: {EXTRA_HINT}\n")
        sys.exit(2)
    from waitress.server import create_server

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = cfg.MockConfig.from_env(
        api_keys=tuple(args.api_keys) if args.api_keys else None,
        qps=args.qps,
        result_ttl_s=args.result_ttl_s,
        time_scale=args.time_scale,
        admin=args.admin,
        errors_in_body=args.errors_in_body,
        public_url=args.public_url,
        render_max_side=args.render_max_side,
    )
    server = create_server(_app(args, config), host=args.host, port=args.port, threads=args.threads)
    url = f"http://{args.host}:{server.effective_port}"
    print(f"PicWish mock listening on {url} key={config.api_keys[0]}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
