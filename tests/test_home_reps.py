"""App Home's scorecard for the person looking: their own numbers as a rep this month, like
for like, with their place among the reps (the `by rep` report's leaderboard order), only
where entries name them as rep."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bot.app.context import open_context
from bot.app.home import rep_card
from storage import Store
from storage.repository import Write
from tests.conftest import SLACK_ADMIN, SLACK_MEMBER, SlackBot, texts
from tests.test_slack import _home_opened, seed

THIRD_REP = "U0003"


def _reps(bot: SlackBot) -> None:
    """Calls attended and deals closed of three reps on the same days of this month and last
    month, and some untagged ones (nobody's: they rank nobody)."""
    seed(bot, date(2026, 3, 2), leads="1")  # the workspace, in New York
    this_month = {SLACK_ADMIN: (10, 4), SLACK_MEMBER: (10, 5), THIRD_REP: (10, 2), "": (5, 5)}
    last_month = {SLACK_ADMIN: (10, 3), SLACK_MEMBER: (10, 5), THIRD_REP: (10, 2), "": (5, 5)}
    for day, figures in ((date(2026, 3, 3), this_month), (date(2026, 2, 3), last_month)):
        for rep, (shows, sales) in figures.items():
            dims = (("rep", rep),) if rep else ()
            bot.store.record("T0001", [Write("shows", day, float(shows), "ana", dims=dims),
                                       Write("sales", day, float(sales), "ana", dims=dims)],
                             actor="ana", origin="test")


def test_a_rep_sees_their_own_numbers_and_place_among_the_reps(slack_bot: SlackBot) -> None:
    _reps(slack_bot)

    admin = texts(_home_opened(slack_bot, user=SLACK_ADMIN))
    member = texts(_home_opened(slack_bot, user=SLACK_MEMBER))

    assert "*Your numbers as a rep* (this month)" in admin
    assert "*Close rate (per attended call)*: 40.0%" in admin
    close = next(line for line in admin.splitlines() if "Close rate" in line and "rep" in line)
    assert close.endswith("· *2nd of 3* reps"), close
    deals = next(line for line in admin.splitlines() if "*Deals closed*" in line)
    assert "4" in deals and deals.endswith("· *2nd of 3* reps"), deals
    shows = next(line for line in admin.splitlines() if "*Calls attended" in line)
    assert shows.endswith("· *1st of 3* reps"), shows  # a tie shares the better place
    assert "2026-03-01..2026-03-11 so far against 2026-02-01..2026-02-11" in admin
    assert "`/kpi report month close_rate by rep` is the whole leaderboard" in admin
    close = next(line for line in member.splitlines() if "Close rate" in line and "rep" in line)
    assert "50.0%" in close and close.endswith("· *1st of 3* reps"), close


def test_without_rep_tags_app_home_has_no_scorecard(slack_bot: SlackBot) -> None:
    seed(slack_bot, date(2026, 3, 10), shows="10", sales="4")

    assert "Your numbers as a rep" not in texts(_home_opened(slack_bot, user=SLACK_ADMIN))

    slack_bot.store.record("T0001", [Write("sales", date(2026, 3, 10), 2.0, "bo",
                                           dims=(("rep", THIRD_REP),))], actor="bo", origin="test")
    # someone else is a rep; the viewer is not one
    assert "Your numbers as a rep" not in texts(_home_opened(slack_bot, user=SLACK_ADMIN))


def test_the_scorecard_ranks_by_the_leaderboards_order_on_each_backend(any_store: Store) -> None:
    any_store.ensure_workspace("T0001", timezone="America/New_York")
    for rep, shows, sales in (("UANA", 10, 4), ("UBO", 10, 5), ("UCY", 8, 2), ("", 4, 4)):
        dims = (("rep", rep),) if rep else ()
        any_store.record("T0001", [Write("shows", date(2026, 3, 3), float(shows), "x", dims=dims),
                                   Write("sales", date(2026, 3, 3), float(sales), "x", dims=dims)],
                         actor="x", origin="test")
    now = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)

    card = rep_card(open_context(any_store, "T0001", "UANA", now))

    assert card is not None and card.partial
    places = {f.key: (f.change.value, f.place, f.of) for f in card.figures}
    assert places["close_rate"] == (0.4, 2, 3)
    assert places["sales"] == (4.0, 2, 3) and places["shows"] == (10.0, 1, 3)
    assert rep_card(open_context(any_store, "T0001", "UNOBODY", now)) is None
