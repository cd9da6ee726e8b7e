#!/usr/bin/env python3
"""Local DynamoDB-compatible server for development and tests.

Serves moto's server application (all of moto's backends; the project uses
DynamoDB only) with every request handled under one lock, so that each
request, e.g. a TransactWriteItems or a conditional write, is applied
atomically with respect to concurrent requests, as on DynamoDB.

    python3 scripts/moto_server.py --host 127.0.0.1 --port 5000

Prints "moto listening on http://HOST:PORT" once the socket is bound and
requests are being served. Exits with status 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any, Callable, Iterable

try:
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server
except ImportError as exc:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        f"moto_server.py: {exc}; install it with: pip install 'moto[server]'\n"
    )
    sys.exit(2)


class SerializedApp:
    """WSGI middleware: one request at a time, body included."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            result = self._app(environ, start_response)
            try:
                # Produce the whole body under the lock: a lazily generated
                # response must not read the backend after the lock is gone.
                return [chunk for chunk in result]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


class _Stop(Exception):
    pass


def _raise_stop(signum: int, _frame: Any) -> None:
    raise _Stop(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port to bind")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not log each request"
    )
    args = parser.parse_args(argv)

    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    app = SerializedApp(DomainDispatcherApplication(create_backend_app))
    # make_server is what werkzeug's run_simple uses underneath; calling it
    # directly lets us announce the address only once the socket is bound.
    server = make_server(args.host, args.port, app, threaded=True)

    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)

    print(f"moto listening on http://{args.host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except _Stop:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
