"""A fake Slack Socket Mode server: a real WebSocket server on 127.0.0.1.

Slack's side of /work/shared/slack-platform.md sections 8 and 15, so the bot's real Socket Mode
client can be tested against dropped links and refreshes. `FakeSlack.socket_mode = fake_socket`
makes `apps.connections.open` hand out this server's single-use `ws://` URLs. On each connection
the server sends `hello`; `push()` sends an envelope to the newest live connection (waiting for
one) and `acks` records every `{"envelope_id", "payload"}` that comes back, with its time.

Faults: `refresh()` sends `{"type":"disconnect","reason":"refresh_requested"}` and closes the
connection after `grace` seconds, as Slack does; `kill("reset")` drops the TCP connection with a
RST and no close frame; `kill("silent")` leaves it open but stops answering anything, pings
included, as a network partition does. The WebSocket server (the `websockets` library) sits
behind a TCP relay of this module, which is what lets a link go silent. An envelope sent on a
connection that closes before its ack is sent again, `retry_delay` after the close, on the next
one (`retry_attempt` + 1).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

__all__ = ["Ack", "Envelope", "FakeSocket", "Link"]

T = TypeVar("T")


@dataclass
class Link:
    """One WebSocket connection a client opened, as the server saw it."""

    id: int
    ticket: str
    opened_at: float
    hello_at: float | None = None
    #: when a disconnect message was sent, and its reason
    disconnect_at: float | None = None
    disconnect_reason: str | None = None
    closed_at: float | None = None
    #: "refresh", "reset", "silent", "client" (the client closed it) or "stop"
    closed_by: str | None = None
    client_port: int = 0
    conn: ServerConnection | None = field(default=None, repr=False)

    @property
    def live(self) -> bool:
        return self.closed_at is None and self.closed_by is None


@dataclass
class Ack:
    envelope_id: str
    payload: Any
    at: float
    link: int


@dataclass
class Envelope:
    envelope_id: str
    type: str
    payload: dict[str, Any]
    accepts_response_payload: bool
    pushed_at: float
    #: (link id, time sent) for each delivery; more than one means it was sent again
    deliveries: list[tuple[int, float]] = field(default_factory=list)


class FakeSocket:
    """Use as `with FakeSocket() as sock:` or `sock = FakeSocket().start()` and `sock.stop()`."""

    def __init__(self, app_id: str = "A0001", *, refresh_grace: float = 1.0,
                 retry_delay: float = 1.0) -> None:
        self.app_id = app_id
        self.refresh_grace = refresh_grace
        #: an envelope whose connection closed unacked is sent again this long after the close
        self.retry_delay = retry_delay
        self.port = 0
        self.links: list[Link] = []
        self.envelopes: dict[str, Envelope] = {}
        self.acks: list[Ack] = []
        #: messages that were not acks of a known envelope (tests assert this stays empty)
        self.strays: list[str] = []
        #: connection attempts refused: (time, reason)
        self.refused: list[tuple[float, str]] = []
        self._tickets: dict[str, bool] = {}  # ticket -> used
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._relay: _Relay | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeSocket:
        self._server = serve(self._session, "127.0.0.1", 0, process_request=self._check_ticket,
                             ping_interval=None, compression=None)
        upstream = self._server.socket.getsockname()[1]
        self._relay = _Relay(upstream).start()
        self.port = self._relay.port
        self._spawn(self._server.serve_forever, "fakesocket-server")
        return self

    def stop(self) -> None:
        self._stopping = True
        for link in self.live_links():
            self._mark_closed(link, "stop")
        if self._relay is not None:
            self._relay.stop()
        if self._server is not None:
            self._server.shutdown()
        with self._lock:
            self._lock.notify_all()

    def __enter__(self) -> FakeSocket:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- apps.connections.open --------------------------------------------------------------

    def new_url(self) -> str:
        """A fresh single-use URL, as `apps.connections.open` returns."""
        ticket = secrets.token_hex(8)
        with self._lock:
            self._tickets[ticket] = False
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        ticket = parse_qs(urlsplit(request.path).query).get("ticket", [""])[0]
        with self._lock:
            used = self._tickets.get(ticket)
            if used is None or used:
                reason = "unknown ticket" if used is None else "ticket already used"
                self.refused.append((time.monotonic(), reason))
                return connection.respond(401, reason)
            self._tickets[ticket] = True
        return None

    # -- one connection ---------------------------------------------------------------------

    def _session(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        ticket = parse_qs(urlsplit(conn.request.path).query).get("ticket", [""])[0]
        with self._lock:
            link = Link(next(self._ids), ticket, time.monotonic(), conn=conn,
                        client_port=self._relay.client_port(conn.remote_address[1])
                        if self._relay else 0)
            self.links.append(link)
            live = sum(1 for k in self.links if k.live)
        hello = {
            "type": "hello",
            "num_connections": live,
            "debug_info": {"host": "applink-fake-1", "build_number": 1,
                           "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        try:
            conn.send(json.dumps(hello))
            with self._lock:
                link.hello_at = time.monotonic()
                self._lock.notify_all()
            self._deliver_pending()
            for message in conn:
                self._received(link, message)
        except Exception:  # the connection went away: its unacked envelopes go out again
            pass
        finally:
            self._mark_closed(link, "client")

    def _received(self, link: Link, message: str | bytes) -> None:
        text = message.decode() if isinstance(message, bytes) else message
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        now = time.monotonic()
        with self._lock:
            if not isinstance(body, dict) or body.get("envelope_id") not in self.envelopes:
                self.strays.append(text)
                return
            self.acks.append(Ack(body["envelope_id"], body.get("payload"), now, link.id))
            self._lock.notify_all()

    def _mark_closed(self, link: Link, by: str) -> None:
        with self._lock:
            if link.closed_by is None:
                link.closed_by = by
            if link.closed_at is None:
                link.closed_at = time.monotonic()
            conn, link.conn = link.conn, None
            self._lock.notify_all()
        if conn is not None and by in ("refresh", "stop", "client"):
            with contextlib.suppress(Exception):
                conn.close()
        if not self._stopping:
            timer = threading.Timer(self.retry_delay, self._deliver_pending)
            timer.daemon = True
            timer.start()

    # -- envelopes --------------------------------------------------------------------------

    def push(self, type: str, payload: dict[str, Any], *,
             accepts_response_payload: bool = True) -> str:
        """Queue an envelope (`slash_commands`, `events_api`, `interactive`); returns its id.

        It goes to the newest live connection that has not been told to disconnect (else the
        newest live one), at once if there is one, else when the next one says hello."""
        envelope = Envelope(f"env-{secrets.token_hex(6)}", type, payload,
                            accepts_response_payload, time.monotonic())
        with self._lock:
            self.envelopes[envelope.envelope_id] = envelope
        self._deliver_pending()
        return envelope.envelope_id

    def _target(self) -> Link | None:
        ready = [k for k in self.links if k.live and k.hello_at is not None and k.conn]
        fresh = [k for k in ready if k.disconnect_at is None]
        return (fresh or ready or [None])[-1]

    def _deliver_pending(self) -> None:
        """Send every envelope not acked and not out on a live connection."""
        with self._lock:
            acked = {a.envelope_id for a in self.acks}
            now = time.monotonic()
            settled = {k.id for k in self.links
                       if k.closed_at is not None and k.closed_at + self.retry_delay <= now}
            due = [e for e in self.envelopes.values() if e.envelope_id not in acked
                   and (not e.deliveries or e.deliveries[-1][0] in settled)]
            target = self._target()
            if target is None or not due:
                return
            for envelope in due:
                envelope.deliveries.append((target.id, time.monotonic()))
            conn = target.conn
        assert conn is not None
        for envelope in due:
            message: dict[str, Any] = {
                "envelope_id": envelope.envelope_id,
                "payload": envelope.payload,
                "type": envelope.type,
                "accepts_response_payload": envelope.accepts_response_payload,
            }
            if len(envelope.deliveries) > 1:
                message["retry_attempt"] = len(envelope.deliveries) - 1
                message["retry_reason"] = "timeout"
            try:
                conn.send(json.dumps(message))
            except Exception:
                self._mark_closed(target, "client")
                return

    def acks_of(self, envelope_id: str) -> list[Ack]:
        with self._lock:
            return [a for a in self.acks if a.envelope_id == envelope_id]

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        """The first ack of the envelope; AssertionError when none came within `timeout`."""
        return self._wait(lambda: next((a for a in self.acks if a.envelope_id == envelope_id),
                                       None), timeout, f"envelope {envelope_id} not acked")

    def ack_seconds(self, envelope_id: str) -> float:
        """From push() to the first ack."""
        ack = self.wait_for_ack(envelope_id, 0)
        return ack.at - self.envelopes[envelope_id].pushed_at

    # -- connections ------------------------------------------------------------------------

    def live_links(self) -> list[Link]:
        with self._lock:
            return [k for k in self.links if k.live]

    def wait_for_hello(self, after: float = 0.0, timeout: float = 10.0) -> Link:
        """The first live connection greeted at or after monotonic time `after`."""
        def found() -> Link | None:
            return next((k for k in self.links if k.live and k.hello_at is not None
                         and k.hello_at >= after), None)
        return self._wait(found, timeout, f"no hello after {after:.3f}")

    def _wait(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = probe()
                if got is not None:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{what} within {timeout}s")
                self._lock.wait(min(left, 0.05))

    # -- faults -----------------------------------------------------------------------------

    def refresh(self, grace: float | None = None) -> list[Link]:
        """Slack's routine `disconnect` (refresh_requested) on every live connection, each
        closed with a close frame `grace` seconds later; returns the connections told."""
        grace = self.refresh_grace if grace is None else grace
        told = []
        for link in self.live_links():
            if link.conn is None or link.disconnect_at is not None:
                continue
            with self._lock:
                link.disconnect_at = time.monotonic()
                link.disconnect_reason = "refresh_requested"
            with contextlib.suppress(Exception):
                link.conn.send(json.dumps({"type": "disconnect", "reason": "refresh_requested",
                                           "debug_info": {"host": "applink-fake-1"}}))
            told.append(link)
            timer = threading.Timer(grace, self._mark_closed, args=(link, "refresh"))
            timer.daemon = True
            timer.start()
        return told

    def kill(self, mode: str = "reset") -> list[Link]:
        """Every live connection dies without a close frame: "reset" drops the TCP connection
        (RST), "silent" keeps it open but nothing flows any more, pings unanswered."""
        if mode not in ("reset", "silent"):
            raise ValueError(f"unknown kill mode {mode!r}: reset or silent")
        assert self._relay is not None
        killed = self.live_links()
        for link in killed:
            with self._lock:
                link.closed_by = mode
                self._lock.notify_all()
            if mode == "reset":
                self._relay.reset(link.client_port)
            else:
                self._relay.silence(link.client_port)
            self._mark_closed(link, mode)
        return killed


class _Relay:
    """TCP between the clients and the WebSocket server; can reset or silence one client."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._lock = threading.Lock()
        #: client's port -> (client socket, upstream socket)
        self._pairs: dict[int, tuple[socket.socket, socket.socket]] = {}
        #: upstream local port -> client's port
        self._by_upstream: dict[int, int] = {}
        self._silent: set[int] = set()
        self._listener: socket.socket | None = None

    def start(self) -> _Relay:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name="fakesocket-relay").start()
        return self

    def client_port(self, upstream_local_port: int) -> int:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with self._lock:
                if upstream_local_port in self._by_upstream:
                    return self._by_upstream[upstream_local_port]
            time.sleep(0.005)
        return 0

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, address = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            port = int(address[1])
            with self._lock:
                self._pairs[port] = (client, upstream)
                self._by_upstream[int(upstream.getsockname()[1])] = port
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(port, a, b), daemon=True).start()

    def _pipe(self, port: int, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if port in self._silent:
                    continue  # swallowed: a black hole answers nothing
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if port not in self._silent:
                self._drop(port)
            elif source is self._pairs.get(port, (None,))[0]:
                self._drop(port)  # the client gave up on the silent link

    def _drop(self, port: int) -> None:
        with self._lock:
            pair = self._pairs.pop(port, None)
            self._silent.discard(port)
        for s in pair or ():
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def reset(self, port: int) -> None:
        with self._lock:
            pair = self._pairs.pop(port, None)
        if pair:
            _reset(pair[0])
            _reset(pair[1])

    def silence(self, port: int) -> None:
        """The client's side stays open and is read, unanswered; the server's side is closed
        (what it sends on closing goes nowhere)."""
        with self._lock:
            self._silent.add(port)
            pair = self._pairs.get(port)
        if pair:
            with contextlib.suppress(OSError):
                pair[1].shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        for port in list(self._pairs):
            self.reset(port)


def _reset(s: socket.socket) -> None:
    """Close with a RST, waking a thread blocked in recv() on it."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        s.close()
