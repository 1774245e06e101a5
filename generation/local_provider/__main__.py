"""``python -m generation.local_provider --port N``: run the local BabySea stand-in."""

import argparse
import json
import logging
import os
import signal
import sys
from urllib.parse import urlsplit

from generation.local_provider.jobs import Config, clean_faults
from generation.local_provider.server import serve


def main(argv: list[str] | None = None) -> int:
    """Parse options (environment variables give the defaults) and serve until stopped."""
    default_url = os.environ.get("LOCAL_PROVIDER_URL", "http://127.0.0.1:8010")
    site_url = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
    parser = argparse.ArgumentParser(prog="python -m generation.local_provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=urlsplit(default_url).port or 8010)
    parser.add_argument(
        "--callback-url",
        default=os.environ.get(
            "LOCAL_PROVIDER_CALLBACK_URL", f"{site_url}/webhooks/providers/babysea/"
        ),
        help="where callbacks go (BabySea registers one account-wide endpoint)",
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get("PROVIDER_WEBHOOK_SECRET", ""),
        help="callback signing secret (PROVIDER_WEBHOOK_SECRET; required)",
    )
    parser.add_argument("--api-key", default=os.environ.get("LOCAL_PROVIDER_API_KEY", ""))
    parser.add_argument(
        "--delay-ms", type=int, default=int(os.environ.get("LOCAL_PROVIDER_DELAY_MS", "500"))
    )
    parser.add_argument(
        "--progress-ms",
        type=int,
        default=int(os.environ.get("LOCAL_PROVIDER_PROGRESS_MS", "1000")),
        help="how often a job at least twice as long calls back with its progress (0: never)",
    )
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument(
        "--faults",
        default=os.environ.get("LOCAL_PROVIDER_FAULTS", "{}"),
        help="default fault knobs as JSON, e.g. '{\"duplicate\": 1}'",
    )
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("no callback signing secret: set PROVIDER_WEBHOOK_SECRET or pass --secret")
    logging.basicConfig(level=logging.INFO, format="local-provider %(levelname)s %(message)s")
    config = Config(
        public_url=f"http://{args.host}:{args.port}",
        callback_url=args.callback_url,
        secret=args.secret,
        api_key=args.api_key,
        delay_ms=args.delay_ms,
        progress_ms=args.progress_ms,
        image_size=args.image_size,
        faults=clean_faults(json.loads(args.faults)),
    )
    server = serve(config, args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.info("serving on %s, callbacks to %s", config.public_url, config.callback_url)
    try:
        server.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
