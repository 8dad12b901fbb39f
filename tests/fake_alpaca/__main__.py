"""Run the fake Alpaca as its own process, for end-to-end tests with several clients.

    python -m tests.fake_alpaca --port 8765 --seed 7

Credentials: ALPACA_API_KEY / ALPACA_SECRET_KEY from the environment when set
(the same variables the back office reads, so one environment serves both, and
no key ever appears on a command line); otherwise any non-empty pair is accepted.
The first line on stdout is ``fake-alpaca listening on <base url>``; with
``--port 0`` that is how a harness learns the port.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from decimal import Decimal
from types import FrameType

from tests.fake_alpaca.server import FakeAlpacaServer
from tests.fake_alpaca.venue import CANCEL_MODES, DEFAULT_CASH, FILL_MODES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_alpaca", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=None, help="seeds probabilistic faults")
    parser.add_argument("--fill-mode", choices=FILL_MODES, default="immediate")
    parser.add_argument("--cancel-mode", choices=CANCEL_MODES, default="immediate")
    parser.add_argument("--cash", type=Decimal, default=DEFAULT_CASH)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    fake = FakeAlpacaServer(
        host=args.host,
        port=args.port,
        seed=args.seed,
        api_key=os.environ.get("ALPACA_API_KEY") or None,
        secret_key=os.environ.get("ALPACA_SECRET_KEY") or None,
        fill_mode=args.fill_mode,
        cancel_mode=args.cancel_mode,
        cash=args.cash,
        verbose=args.verbose,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"fake-alpaca listening on {fake.base_url}", flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
