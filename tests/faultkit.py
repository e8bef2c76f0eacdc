"""Helpers for fault and load tests: a real `kpibot serve --http` subprocess, a TCP proxy that
can cut the database off, signed requests on a keep-alive connection, PostgreSQL schemas, and
counting what the fake Slack shows per delivery key.

Used by tests/test_faults.py and bench/load_bench.py. Nothing here touches the bot's code: the
bot runs as an operator runs it, configured only through its environment.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

__all__ = [
    "BotProcess",
    "TcpProxy",
    "chart_counts",
    "free_port",
    "kpibot_executable",
    "keys_posted",
    "pg_reachable",
    "pg_schema",
    "post_signed",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kpibot_executable() -> list[str]:
    """The installed console script next to this interpreter, else `python -m bot.cli`."""
    script = Path(sys.executable).parent / "kpibot"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())"]


class BotProcess:
    """`kpibot serve --http --port N` in a subprocess, configured through its environment.

    The working directory is `workdir` (so no stray `.env` of the repository is read) and
    stdout/stderr go to `workdir/<name>.log`, which `tail()` shows when something fails.
    """

    def __init__(self, workdir: Path, env: Mapping[str, str], *, port: int | None = None,
                 name: str = "kpibot", socket_mode: bool = False) -> None:
        """`socket_mode`: plain `kpibot serve`, which connects over Socket Mode when `env` has
        SLACK_APP_TOKEN (there is then no /healthz to wait for)."""
        self.workdir = workdir
        self.socket_mode = socket_mode
        self.port = port or free_port()
        self.name = name
        self.log_path = workdir / f"{name}.log"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("SLACK_", "KPIBOT_", "DATABASE_URL"))}
        self.env = {**base, **env, "KPIBOT_PORT": str(self.port), "KPIBOT_HOST": "127.0.0.1",
                    "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BotProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n==== start {self.starts} at {time.time():.3f}\n".encode())
        log.flush()
        args = ["serve"] if self.socket_mode else ["serve", "--http", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*kpibot_executable(), *args],
            cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Seconds until GET /healthz answered 200; raises with the log's tail if it never does."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.alive():
                raise AssertionError(f"{self.name} exited with {self.returncode()}:\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not healthy within {timeout}s:\n{self.tail()}")

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill9(self) -> None:
        """SIGKILL: no handler, no flush, no cleanup, as when the machine loses the process."""
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill9()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


# -- requests -------------------------------------------------------------------------------


def post_signed(port: int, secret: str, body: bytes, timeout: float = 30.0,
                path: str = "/slack/events") -> tuple[int, bytes, float]:
    """One signed POST on a fresh connection: (status, body, seconds); status 0 on an error."""
    from tests.slackreq import sign

    headers = sign(secret, body)
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data, time.monotonic() - started
    except (OSError, http.client.HTTPException):
        return 0, b"", time.monotonic() - started


def reply_text(body: bytes) -> str:
    """The text of an ack body (JSON message or plain text)."""
    raw = body.strip()
    if raw.startswith(b"{"):
        try:
            return str(json.loads(raw).get("text") or "")
        except ValueError:
            return raw.decode(errors="replace")
    return raw.decode(errors="replace")


# -- the database ---------------------------------------------------------------------------


def pg_reachable(url: str | None, timeout: float = 3.0) -> str | None:
    """None when PostgreSQL at `url` answers, else why not (for a skip reason)."""
    if not url:
        return "no PostgreSQL URL given"
    try:
        engine = create_engine(url, connect_args={"connect_timeout": int(timeout)})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # any failure means: not usable here
        return f"PostgreSQL not reachable at {make_url(url).render_as_string()}: " \
               f"{error.__class__.__name__}"
    return None


@contextlib.contextmanager
def pg_schema(base_url: str, prefix: str = "kpibot_fault") -> Iterator[str]:
    """A URL whose search path is a brand-new schema, dropped afterwards: every PostgreSQL
    test (conftest.pg_url), fault test and benchmark starts from an empty database."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def via(url: str, port: int) -> str:
    """The same database URL, reached through 127.0.0.1:`port` (a proxy)."""
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


class TcpProxy:
    """A TCP relay on 127.0.0.1 (threads and sockets) that can cut its clients off.

    `cut()` closes the listening socket (new connections are refused) and resets every relayed
    connection (RST, SO_LINGER 0), as when the database host goes away; `restore()` listens on
    the same port again. `freeze()` is a black hole instead (a network partition, a host that
    stops answering): connections stay open and new ones are accepted, but nothing is relayed
    until `thaw()`, when everything held flows on.
    """

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.accepted = 0
        self._frozen = threading.Event()

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True,
                                        name=f"proxy-{self.port}")
        self._thread.start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            while self._frozen.is_set() and self._listener is listener:
                time.sleep(0.05)  # the client's connect() succeeded; its handshake hangs
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _reset(client)
                    _reset(upstream)
                    continue
                self._conns.update((client, upstream))
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while self._frozen.is_set():
                    time.sleep(0.05)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                known = source in self._conns
                self._conns.discard(source)
                self._conns.discard(sink)
            if known:
                for s in (source, sink):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    with contextlib.suppress(OSError):
                        s.close()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = list(self._conns), set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for s in conns:
            _reset(s)

    def freeze(self) -> None:
        """Stop relaying, without closing anything."""
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def restore(self) -> None:
        """Listen on the same port again."""
        assert self._listener is None, "not cut"
        self.start()

    def stop(self) -> None:
        self._frozen.clear()
        if self._listener is not None:
            self.cut()


def _reset(s: socket.socket) -> None:
    """Closes with a RST. shutdown(SHUT_RD) first: it wakes a thread blocked in recv() on the
    socket (a bare close() does not, and the kernel keeps the connection open until it returns)."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        s.close()


# -- what the fake Slack shows --------------------------------------------------------------


def message_key(message: Mapping[str, Any]) -> str | None:
    metadata = message.get("metadata") or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return None
    payload = metadata.get("event_payload") or {}
    key = payload.get("key")
    return str(key) if key else None


def keys_posted(fake: Any, channels: list[str]) -> tuple[Counter[str], list[str]]:
    """(delivery key -> top-level messages carrying it, texts of top-level messages without one)."""
    keys: Counter[str] = Counter()
    unkeyed: list[str] = []
    for channel in channels:
        for message in fake.messages_in(channel):
            key = message_key(message)
            if key:
                keys[key] += 1
            else:
                unkeyed.append(f"{channel}: {str(message.get('text'))[:60]}")
    return keys, unkeyed


def chart_counts(fake: Any) -> Counter[tuple[str, str, str]]:
    """(channel, thread ts, file name) -> files shared there; more than 1 is a duplicate chart."""
    counts: Counter[tuple[str, str, str]] = Counter()
    with fake._lock:
        files = list(fake.files.values())
    for f in files:
        for channel in f.get("channels") or [""]:
            counts[(channel, str(f.get("thread_ts")), str(f.get("name")))] += 1
    return counts
