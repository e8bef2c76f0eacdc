"""Socket Mode against a real WebSocket server (tests/fakesocket.py): `kpibot serve` with an
xapp- token in a subprocess, its acks, and how it comes back from dead links and refreshes.

Times are printed, not asserted (bench/socket_bench.py has the targets); the deadlines here
are Slack's requirement, an envelope acked at all within 10 s.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests import slackreq
from tests.conftest import texts
from tests.fakeslack import FakeSlack
from tests.fakesocket import FakeSocket
from tests.faultkit import BotProcess

ACKED_WITHIN = 10.0


@dataclass
class SocketBot:
    fake: FakeSlack
    sock: FakeSocket
    process: BotProcess

    def command(self, text: str) -> str:
        """Push `/kpi TEXT` as a slash_commands envelope; returns its envelope id."""
        body = slackreq.slash_command_body(text, response_url=self.fake.new_response_url())
        payload: dict[str, Any] = dict(parse_qsl(body.decode()))
        return self.sock.push("slash_commands", payload)

    def acked(self, envelope_id: str) -> Any:
        try:
            return self.sock.wait_for_ack(envelope_id, ACKED_WITHIN)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.process.tail()}") from error


@pytest.fixture(scope="module")
def socket_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocketBot]:
    workdir: Path = tmp_path_factory.mktemp("socket")
    fake = FakeSlack().start()
    fake.add_user("U0001", tz="America/New_York", is_admin=True)
    sock = FakeSocket(app_id=fake.app_id).start()
    fake.socket_mode = sock
    process = BotProcess(workdir, {
        "DATABASE_URL": f"sqlite:///{workdir / 'socket.db'}",
        "SLACK_APP_TOKEN": "xapp-1-A0001-socket", "SLACK_BOT_TOKEN": "xoxb-socket",
        "SLACK_API_URL": fake.api_url,
    }, socket_mode=True).start()
    try:
        try:
            sock.wait_for_hello(timeout=60)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{process.tail()}") from error
        yield SocketBot(fake, sock, process)
    finally:
        process.stop()
        sock.stop()
        fake.stop()
    assert sock.strays == [], sock.strays[:5]


def reconnected(bot: SocketBot, since: float) -> float:
    """Seconds from `since` to the bot's next hello."""
    try:
        return bot.sock.wait_for_hello(after=since, timeout=ACKED_WITHIN).hello_at - since  # type: ignore[operator]
    except AssertionError as error:
        raise AssertionError(f"{error}\n{bot.process.tail()}") from error


def test_kpi_help_is_acked_with_the_reply(socket_bot: SocketBot) -> None:
    envelope = socket_bot.command("help")
    ack = socket_bot.acked(envelope)

    assert ack.payload is not None
    assert "/kpi log" in texts(ack.payload)
    assert len(socket_bot.sock.acks_of(envelope)) == 1
    print(f"\n/kpi help acked in {socket_bot.sock.ack_seconds(envelope) * 1000:.0f} ms")


@pytest.mark.parametrize("mode", ["reset", "silent"])
def test_after_a_dead_connection_the_bot_reconnects_and_acks(socket_bot: SocketBot,
                                                             mode: str) -> None:
    socket_bot.acked(socket_bot.command("help"))  # a healthy link first
    killed_at = time.monotonic()
    [dead] = socket_bot.sock.kill(mode)
    envelope = socket_bot.command("help")

    took = reconnected(socket_bot, killed_at)
    ack = socket_bot.acked(envelope)

    assert ack.link != dead.id
    assert "/kpi log" in texts(ack.payload)
    assert len(socket_bot.sock.acks_of(envelope)) == 1
    print(f"\n{mode}: new hello after {took:.2f} s, "
          f"acked {socket_bot.sock.ack_seconds(envelope):.3f} s after it was sent")


def test_an_envelope_right_after_a_refresh_is_acked(socket_bot: SocketBot) -> None:
    socket_bot.acked(socket_bot.command("help"))
    refreshed_at = time.monotonic()
    [told] = socket_bot.sock.refresh()
    envelope = socket_bot.command("help")

    ack = socket_bot.acked(envelope)
    took = reconnected(socket_bot, refreshed_at)

    assert told.disconnect_reason == "refresh_requested"
    assert "/kpi log" in texts(ack.payload)
    assert len(socket_bot.sock.acks_of(envelope)) == 1
    print(f"\nrefresh: new hello after {took:.2f} s, "
          f"acked {socket_bot.sock.ack_seconds(envelope):.3f} s after it was sent")


def test_twenty_refresh_and_kill_cycles_ack_every_envelope_once(socket_bot: SocketBot) -> None:
    sock = socket_bot.sock
    socket_bot.acked(socket_bot.command("help"))
    sent: list[str] = []
    figures: dict[str, list[tuple[float, float]]] = {"refresh": [], "reset": [], "silent": []}
    for cycle in range(21):
        fault = ("refresh", "reset", "refresh", "silent")[cycle % 4]
        started = time.monotonic()
        if fault == "refresh":
            sock.refresh(grace=(0.0, 0.5, 1.0)[cycle % 3])
        else:
            sock.kill(fault)
        envelope = socket_bot.command("help")
        sent.append(envelope)
        socket_bot.acked(envelope)
        took = reconnected(socket_bot, started)
        figures[fault].append((took, sock.ack_seconds(envelope)))

    acks = Counter(a.envelope_id for a in sock.acks)
    resent = sum(len(sock.envelopes[e].deliveries) - 1 for e in sent)
    assert {e: acks[e] for e in sent} == {e: 1 for e in sent}
    print(f"\n{len(sent)} envelopes, each acked once; {resent} sent again after a lost link")
    for fault, values in figures.items():
        hellos, acked = [v[0] for v in values], [v[1] for v in values]
        print(f"\n{fault} x{len(values)}: new hello median {statistics.median(hellos):.2f} s "
              f"max {max(hellos):.2f} s; ack median {statistics.median(acked):.3f} s "
              f"max {max(acked):.3f} s")
