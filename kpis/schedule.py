"""When a local-time schedule is due: 09:00 stays 09:00 in the workspace's zone all year.

Times are built per date in the zone (not as a fixed UTC offset), so a daylight-saving change
moves the UTC instant and not the local minute. A local time skipped by a spring-forward
change resolves to the same instant one hour later, as clocks show it that day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from kpis.periods import zone

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class ScheduleError(ValueError):
    pass


def parse_time(text: str) -> time:
    """`HH:MM` on a 24-hour clock."""
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ScheduleError(f"`{text}` is not a time: write it as HH:MM, e.g. `09:00` or `17:30`") from None


def local_instant(day: date, at: time, zone_name: str) -> datetime:
    """`at` on `day` in the zone, as a UTC instant."""
    return datetime.combine(day, at, tzinfo=zone(zone_name)).astimezone(UTC)


def last_due(at: time, weekday: int | None, zone_name: str, now: datetime) -> datetime:
    """The latest scheduled instant at or before `now` (daily, or weekly on `weekday`)."""
    today = now.astimezone(zone(zone_name)).date()
    for back in range(8):
        day = today - timedelta(days=back)
        if weekday is not None and day.weekday() != weekday:
            continue
        instant = local_instant(day, at, zone_name)
        if instant <= now:
            return instant
    raise AssertionError("a daily or weekly schedule is due within eight days")


def next_due(at: time, weekday: int | None, zone_name: str, now: datetime) -> datetime:
    """The first scheduled instant strictly after `now`."""
    today = now.astimezone(zone(zone_name)).date()
    for ahead in range(9):
        day = today + timedelta(days=ahead)
        if weekday is not None and day.weekday() != weekday:
            continue
        instant = local_instant(day, at, zone_name)
        if instant > now:
            return instant
    raise AssertionError("a daily or weekly schedule is due within nine days")
