"""The one composition root: builds the store, clients, Courier, alert evaluator, scheduler and
the Bolt app, each complete when made, in the order they depend on each other.

`kpibot serve`, the CLI subcommands that post, the tests and the benchmarks all build the bot
here, so there is one way the parts are wired.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from slack_bolt import App
from slack_sdk import WebClient

from bot.app.alerts import Alerting
from bot.app.ports import Ports
from bot.app.reminders import wake_nudges
from bot.app.timers import Woken
from bot.observability import Metrics
from bot.scheduler import Scheduler, default_workers
from bot.settings import Settings, secret
from bot.slack.app import build_app, clients_for, courier_client, installation_store
from bot.slack.courier import Courier
from bot.slack.directory import SlackDirectory
from bot.slack.pacing import Pacer
from bot.slack.runtime import Services
from storage import Store, open_store
from storage.repository import utcnow
from storage.timers import ALERTS_TIMER, NUDGES_TIMER, Timer


@dataclass(frozen=True)
class Bot:
    """Everything one `kpibot serve` process runs."""

    store: Store
    settings: Settings
    clock: Callable[[], datetime]
    metrics: Metrics
    executor: ThreadPoolExecutor
    courier: Courier
    alerting: Alerting
    scheduler: Scheduler
    services: Services
    app: App

    def close(self) -> None:
        self.scheduler.shutdown()
        self.app.listener_runner.listener_executor.shutdown(wait=True)
        self.alerting.close()
        self.executor.shutdown(wait=True, cancel_futures=True)


def bootstrap(
    settings: Settings, *, store: Store | None = None, clock: Callable[[], datetime] = utcnow,
    metrics: Metrics | None = None,
) -> Bot:
    store = store or open_store(settings.database_url)
    metrics = metrics or Metrics()
    installations = installation_store(settings, store)
    client_for = clients_for(settings, store, installations)
    lease = timedelta(seconds=settings.kpibot_claim_lease_seconds)
    pacer = Pacer(clock, history_interval=timedelta(seconds=settings.kpibot_history_interval_seconds))
    courier = Courier(store, client_for, metrics, clock, lease=lease, pacer=pacer)
    alerting = Alerting(store, courier, clock)
    directory = SlackDirectory(store, client_for)

    def nudges(timer: Timer, now: datetime) -> Woken:
        return wake_nudges(store, courier, directory, timer, now)

    scheduler = Scheduler(store, courier, clock, {ALERTS_TIMER: alerting.wake, NUDGES_TIMER: nudges},
                          workers=default_workers(), lease=lease)
    ports = Ports(poster=courier, logged=alerting.logged, schedule_changed=scheduler.wake_up,
                  rules_changed=alerting.rules_changed, snoozed=alerting.snoozed,
                  counted=lambda origin, n: metrics.entries.labels(origin=origin).inc(n),
                  installations=installations)
    executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="kpibot")
    services = Services(store, settings, clock, metrics, executor, ports)
    app = build_app(services, installations)
    return Bot(store, settings, clock, metrics, executor, courier, alerting, scheduler, services, app)


def posting_courier(settings: Settings, store: Store, clock: Callable[[], datetime]) -> Courier:
    """A Courier for one-off posts from the CLI (`kpibot digest --post`), on the bot token."""
    client: WebClient = courier_client(settings, secret(settings.slack_bot_token),
                                       wait_out_429=True)
    return Courier(store, lambda _workspace_id: client, Metrics(), clock,
                   lease=timedelta(seconds=settings.kpibot_claim_lease_seconds))
