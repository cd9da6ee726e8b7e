#!/usr/bin/env python3
"""Local DynamoDB-compatible server for development and tests.

Serves moto's server application (all of moto's backends; the project uses
DynamoDB only) with every request handled under one lock, so that each
request, e.g. a TransactWriteItems or a conditional write, is applied
atomically with respect to concurrent requests, as on DynamoDB.

The HTTP server is waitress with one worker thread: it keeps connections
open (HTTP/1.1 keep-alive), as DynamoDB does, where werkzeug's development
server answers every request with `Connection: close`, so that each SDK call
paid a new TCP connection. Requests are still handled one at a time. Without
waitress installed (scripts/ensure-tools.sh installs it) the server falls
back to werkzeug, with a warning.

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

try:
    import waitress.server
except ImportError:  # pragma: no cover - depends on the machine
    waitress = None  # type: ignore[assignment]


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


def _stop_tracking_instances() -> None:
    """moto's BaseModel keeps every model instance ever created, for the
    in-process reset of its test decorators; a server never resets. With
    TransactWriteItems copying a table per call (below) that list grew by a
    whole table per transaction: gigabytes within a few thousand calls."""
    from moto.core.common_models import BaseModel

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    BaseModel.__new__ = __new__  # type: ignore[method-assign]


def _cheap_transaction_rollback() -> None:
    """moto's TransactWriteItems deep-copies each table it touches (all its
    items and stream records) to roll back on failure, so a transaction
    costs time in proportion to everything the table ever held. Instead,
    copy only the items the transaction names (and remember the stream's
    length), let moto's own copy be the table itself, and restore those
    items when the transaction fails. Same outcome, constant cost."""
    import copy

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    state = threading.local()

    def table_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        if getattr(state, "in_transaction", False):
            return self
        new = object.__new__(type(self))
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            setattr(new, name, copy.deepcopy(value, memo))
        return new

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: Any) -> Any:
        saved = []
        for entry in transact_items:
            for op in entry.values():
                table = self.tables.get(op.get("TableName"))
                key = op.get("Key") or op.get("Item")
                if table is None or not key or table.hash_key_attr not in key:
                    continue
                hash_key = DynamoType(key[table.hash_key_attr])
                range_key = None
                if table.range_key_attr is not None:
                    if table.range_key_attr not in key:
                        continue
                    range_key = DynamoType(key[table.range_key_attr])
                item = table.get_item(hash_key, range_key)
                shard = table.stream_shard
                saved.append(
                    (
                        table,
                        hash_key,
                        range_key,
                        copy.deepcopy(item),
                        len(shard.items) if shard is not None else None,
                    )
                )
        state.in_transaction = True
        try:
            return original(self, transact_items)
        except BaseException:
            for table, hash_key, range_key, item, stream_len in reversed(saved):
                items = table.items if range_key is None else table.items[hash_key]
                slot = hash_key if range_key is None else range_key
                if item is None:
                    items.pop(slot, None)
                else:
                    items[slot] = item
                if stream_len is not None and table.stream_shard is not None:
                    del table.stream_shard.items[stream_len:]
            raise
        finally:
            state.in_transaction = False

    Table.__deepcopy__ = table_deepcopy  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _exit_with_parent(pid: int) -> None:
    """Stops serving once process `pid` has exited (as on SIGTERM)."""
    import os
    import time

    def watch() -> None:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            except PermissionError:
                pass
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port to bind")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not log each request"
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="exit once this process is gone (tests that start their own server)",
    )
    args = parser.parse_args(argv)

    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # With one worker, requests waiting for it are the normal case, not a
    # warning ("Task queue depth is N").
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    _stop_tracking_instances()
    _cheap_transaction_rollback()
    app = SerializedApp(DomainDispatcherApplication(create_backend_app))

    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)

    if args.parent_pid is not None:
        _exit_with_parent(args.parent_pid)

    if waitress is not None:
        # One worker thread: one request at a time, connections kept open.
        # The socket is bound here, so the address can be announced.
        server = waitress.server.create_server(
            app,
            host=args.host,
            port=args.port,
            threads=1,
            connection_limit=1000,
            channel_timeout=300,
            ident="moto",
        )
        port = server.effective_port
        serve, close = server.run, server.close
    else:
        sys.stderr.write(
            "moto_server.py: waitress is not installed (scripts/ensure-tools.sh); "
            "serving with werkzeug, which closes every connection\n"
        )
        # make_server is what werkzeug's run_simple uses underneath; calling
        # it directly lets us announce the address only once it is bound.
        server = make_server(args.host, args.port, app, threaded=True)
        port = server.port
        serve, close = server.serve_forever, server.server_close

    print(f"moto listening on http://{args.host}:{port}", flush=True)
    try:
        serve()
    except _Stop:
        pass
    finally:
        close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
