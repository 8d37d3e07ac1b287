"""Run a stand-in as its own process: `python -m stockpipe_dev.localservices.standin_main finnhub|slack`."""

from __future__ import annotations

import argparse

from stockpipe_dev.localservices.finnhub_standin import FinnhubStandin
from stockpipe_dev.localservices.http_standin import HttpStandin
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin
from stockpipe_dev.localservices.tiingo_standin import TiingoStandin


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", choices=["finnhub", "slack", "tiingo"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--free-token", action="append", default=[])
    parser.add_argument("--premium-token", action="append", default=[])
    parser.add_argument("--per-minute", type=int, default=60)
    args = parser.parse_args(argv)
    standin: HttpStandin
    if args.which == "finnhub":
        standin = FinnhubStandin(args.free_token, args.premium_token, per_minute=args.per_minute, port=args.port)
    elif args.which == "tiingo":
        standin = TiingoStandin(args.free_token, port=args.port)
    else:
        standin = SlackWebhookStandin(port=args.port)
    standin.serve_forever()


if __name__ == "__main__":
    main()
