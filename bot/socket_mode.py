"""Socket Mode that survives a dropped connection: Bolt's websocket-client adapter, hardened.

Measured against tests/fakesocket.py (README, Socket Mode): Bolt's builtin adapter takes ~51 s
to notice a link that went silent (bolt-python #675) and loses an ack sent on a link being
refreshed; the websocket-client adapter never notices a silent link (no pong timeout) and, in
about 1 of 4 refreshes, leaves the new URL unopened for 10 s: its one runner thread is still
inside the old session's `run_forever`, whose select waits out its 10 s timeout. So here:

- each session runs on its own thread, so a closing session never holds up the next one;
- pings every `ping_interval` with a `ping_timeout`, so a silent link is dropped;
- a watchdog reconnects when a session has said no `hello` within `hello_timeout`;
- a closing session reconnects only if it is still the current one (no URL churn);
- the session being replaced is read on for `retire_after` seconds (Slack may still send
  envelopes on it after its `disconnect`), then closed, unless Slack closed it first;
- an ack sent while the new session is still opening waits for it (up to `send_wait`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode.websocket_client import SocketModeHandler
from slack_sdk.socket_mode.websocket_client import SocketModeClient
from websocket import WebSocketApp, WebSocketException

log = logging.getLogger("kpibot.socket_mode")

PING_INTERVAL = 4.0
PING_TIMEOUT = 2.0
HELLO_TIMEOUT = 5.0
SEND_WAIT = 2.0
RETIRE_AFTER = 2.0


class SturdySocketModeClient(SocketModeClient):
    """slack_sdk's websocket-client SocketModeClient with one thread per session and a watchdog."""

    def __init__(self, app_token: str, *, ping_timeout: float = PING_TIMEOUT,
                 hello_timeout: float = HELLO_TIMEOUT, send_wait: float = SEND_WAIT,
                 retire_after: float = RETIRE_AFTER, **kwargs: Any) -> None:
        self.ping_timeout = ping_timeout
        self.retire_after = retire_after
        self.hello_timeout = hello_timeout
        self.send_wait = send_wait
        self._hello: dict[int, float] = {}  # id(session) -> when it said hello
        self._opened_at = 0.0
        self._connected = threading.Condition()
        super().__init__(app_token, **kwargs)

    def connect(self) -> None:
        """A new session on `wss_uri`, run on its own thread; the previous one is closed."""
        old = self.current_session
        if self.wss_uri is None:
            self.wss_uri = self.issue_new_wss_url()
        session = WebSocketApp(
            self.wss_uri, on_open=self._on_open, on_message=self._on_message,
            on_error=self._on_error, on_close=self._on_close,
        )
        self.current_session = session
        self._opened_at = time.monotonic()
        self.auto_reconnect_enabled = self.default_auto_reconnect_enabled
        if not self.current_app_monitor_started:
            self.current_app_monitor_started = True
            self.current_app_monitor.start()
        threading.Thread(target=self._run, args=(session,), daemon=True,
                         name="socket-mode-session").start()
        if old is not None:  # read on for a while: envelopes may still come on it
            timer = threading.Timer(self.retire_after, self._retire, args=(old,))
            timer.daemon = True
            timer.start()
        self.logger.info("A new session has been established")

    def _run(self, session: WebSocketApp) -> None:
        try:
            session.run_forever(
                ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
                http_proxy_host=self.http_proxy_host, http_proxy_port=self.http_proxy_port,
                http_proxy_auth=self.http_proxy_auth, proxy_type=self.proxy_type,
            )
        except Exception as error:
            self.logger.exception(f"Socket Mode session failed: {error}")
        finally:
            self._hello.pop(id(session), None)
            if session is self.current_session and self.auto_reconnect_enabled \
                    and not self.closed:
                self.logger.info("The current session ended. Reconnecting...")
                self.connect_to_new_endpoint()

    def _run_current_session(self) -> None:
        """Sessions start their own threads in connect(); the SDK's runner has nothing to do."""

    def _on_open(self, ws: WebSocketApp) -> None:
        with self._connected:
            self._connected.notify_all()

    def _on_message(self, ws: WebSocketApp, message: str) -> None:
        if '"hello"' in message[:40]:
            try:
                if json.loads(message).get("type") == "hello":
                    self._hello[id(ws)] = time.monotonic()
            except ValueError:
                pass
        self.enqueue_message(message)

    def _retire(self, session: WebSocketApp) -> None:
        if session is not self.current_session:
            session.close()

    def _on_error(self, ws: WebSocketApp, error: Exception) -> None:
        if ws is self.current_session:
            self.logger.warning(f"Socket Mode connection error: {type(error).__name__}: {error}")

    def _on_close(self, ws: WebSocketApp, code: int | None = None, reason: str | None = None) -> None:
        """Reconnecting is left to `_run`, once run_forever has returned."""

    def _monitor_current_session(self) -> None:
        """Every ping_interval: reconnect when the session is gone or never said hello."""
        if not self.current_app_monitor_started or not self.auto_reconnect_enabled or self.closed:
            return
        try:
            session = self.current_session
            if session is None or session.sock is None:
                if time.monotonic() - self._opened_at > self.hello_timeout:
                    self.logger.info("No open Socket Mode session. Reconnecting...")
                    self.connect_to_new_endpoint(force=True)
            elif id(session) not in self._hello \
                    and time.monotonic() - self._opened_at > self.hello_timeout:
                self.logger.warning(f"No hello within {self.hello_timeout:.0f} s. Reconnecting...")
                self.connect_to_new_endpoint(force=True)
        except Exception as error:
            self.logger.error(f"Socket Mode watchdog failed to reconnect: {error}")

    def send_message(self, message: str) -> None:
        """Sends on the current session, waiting up to send_wait for it to open (an ack for an
        envelope that came in on the session being replaced)."""
        deadline = time.monotonic() + self.send_wait
        while True:
            session = self.current_session
            try:
                if session is not None and session.sock is not None and session.sock.connected:
                    session.send(message)
                    return
            except (WebSocketException, OSError) as error:
                if time.monotonic() >= deadline:
                    raise WebSocketException(f"no open session to send on: {error}") from error
            if time.monotonic() >= deadline:
                raise WebSocketException("no open Socket Mode session to send on")
            with self._connected:
                self._connected.wait(0.05)


class SturdySocketModeHandler(SocketModeHandler):
    """Bolt's websocket-client SocketModeHandler on a SturdySocketModeClient."""

    def __init__(self, app: App, app_token: str, *, ping_interval: float = PING_INTERVAL,
                 ping_timeout: float = PING_TIMEOUT, hello_timeout: float = HELLO_TIMEOUT,
                 concurrency: int = 10) -> None:
        self.app = app
        self.app_token = app_token
        self.client = SturdySocketModeClient(
            app_token, logger=app.logger, web_client=app.client, ping_interval=ping_interval,
            ping_timeout=ping_timeout, hello_timeout=hello_timeout, concurrency=concurrency,
        )
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]
