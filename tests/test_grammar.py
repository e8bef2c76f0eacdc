"""The `/kpi` grammar of interface.md: what each command text means, and how bad text is answered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.grammar import (
    COMMANDS,
    DIMENSIONS,
    RANGES,
    AlertAdd,
    AlertForm,
    AlertRemove,
    Alerts,
    AlertSnooze,
    Chart,
    Command,
    CommandError,
    Define,
    DigestNow,
    DigestOff,
    DigestSchedule,
    DimensionAdd,
    DimensionRemove,
    Dimensions,
    Export,
    Goal,
    GoalRemove,
    Goals,
    Help,
    History,
    Log,
    LogForm,
    MetricAdd,
    MetricRemove,
    Metrics,
    Report,
    Settings,
    Track,
    Tracking,
    Tz,
    Undo,
    parse_command,
)

# One block per row of the `/kpi` table in interface.md.
ROWS: list[tuple[str, Command]] = [
    # *(empty)* or `log`
    ("", LogForm()),
    ("   ", LogForm()),
    ("log", LogForm()),
    ("LOG", LogForm()),
    # log METRIC=VALUE ... [date=...] [DIMENSION=VALUE ...]
    ("log leads=12", Log(values=(("leads", "12"),))),
    (
        "log leads=12 spend=340",
        Log(values=(("leads", "12"), ("spend", "340"))),
    ),
    ("log Leads=12", Log(values=(("leads", "12"),))),
    ("log leads = 12 spend =340", Log(values=(("leads", "12"), ("spend", "340")))),
    ("log leads=12, spend=340", Log(values=(("leads", "12"), ("spend", "340")))),
    ("log leads=12,spend=340", Log(values=(("leads", "12"), ("spend", "340")))),
    ("log spend=$1,234 leads=7", Log(values=(("spend", "$1,234"), ("leads", "7")))),
    ("log spend=$1,234, leads=7", Log(values=(("spend", "$1,234"), ("leads", "7")))),
    ("log spend=1.5k ctr=12%", Log(values=(("spend", "1.5k"), ("ctr", "12%")))),
    ("log leads=-5", Log(values=(("leads", "-5"),))),
    ("log leads=12 date=today", Log(values=(("leads", "12"),), date="today")),
    ("log leads=12 date=Yesterday", Log(values=(("leads", "12"),), date="yesterday")),
    ("log leads=12 date=2024-02-29", Log(values=(("leads", "12"),), date="2024-02-29")),
    (
        "log leads=12 source=Facebook campaign=Spring product=Coaching",
        Log(
            values=(("leads", "12"),),
            dims=(("source", "facebook"), ("campaign", "spring"), ("product", "coaching")),
        ),
    ),
    (
        "log leads=12 campaign=\u201cSpring  Sale\u201d",
        Log(values=(("leads", "12"),), dims=(("campaign", "spring sale"),)),
    ),
    ("log leads=12 rep=<@U123|ana>", Log(values=(("leads", "12"),), dims=(("rep", "U123"),))),
    ("log leads=12 rep=<@U123>", Log(values=(("leads", "12"),), dims=(("rep", "U123"),))),
    ("log leads=12 rep=U0ABC123", Log(values=(("leads", "12"),), dims=(("rep", "U0ABC123"),))),
    ("log\u00a0leads=12\u00a0\u00a0spend=3", Log(values=(("leads", "12"), ("spend", "3")))),
    # report [RANGE] [KPI ...]
    ("report", Report()),
    ("report week", Report(range="week")),
    ("report last-week", Report(range="last-week")),
    ("report Month cpl", Report(range="month", kpis=("cpl",))),
    ("report 30d leads revenue", Report(range="30d", kpis=("leads", "revenue"))),
    ("report week cpl by source", Report(range="week", kpis=("cpl",), by="source")),
    ("report by rep close_rate", Report(kpis=("close_rate",), by="rep")),
    ("report 30d cpl source=Facebook campaign=spring",
     Report(range="30d", kpis=("cpl",), dims=(("campaign", "spring"), ("source", "facebook")))),
    ("report rep=<@U123ABC|ana> by source",
     Report(dims=(("rep", "U123ABC"),), by="source")),
    ("report last-month", Report(range="last-month")),
    ("report today", Report(range="today")),
    ("report yesterday", Report(range="yesterday")),
    ("report 7d", Report(range="7d")),
    ("report 90D", Report(range="90d")),
    ("report 366d", Report(range="366d")),
    ("report 2026-01-01..2026-01-31", Report(range="2026-01-01..2026-01-31")),
    ("report 2026-01-05", Report(range="2026-01-05..2026-01-05")),
    ("report 30d cpl CTR", Report(range="30d", kpis=("cpl", "ctr"))),
    ("report cpl ctr 30d", Report(range="30d", kpis=("cpl", "ctr"))),
    ("report cpl", Report(kpis=("cpl",))),
    # chart NAME [RANGE] [by DIM]
    ("chart cpl", Chart(kpi="cpl")),
    ("chart CPL 30d", Chart(kpi="cpl", range="30d")),
    ("chart 30d cpl", Chart(kpi="cpl", range="30d")),
    ("chart leads 30d by source", Chart(kpi="leads", range="30d", by="source")),
    ("chart by Rep revenue", Chart(kpi="revenue", by="rep")),
    ("chart cpl yesterday by campaign", Chart(kpi="cpl", range="yesterday", by="campaign")),
    # digest now [daily|weekly]
    ("digest now", DigestNow(kind="daily")),
    ("digest now weekly", DigestNow(kind="weekly")),
    ("digest NOW Daily", DigestNow(kind="daily")),
    # digest daily HH:MM · digest weekly DAY HH:MM · digest off
    ("digest daily 09:00", DigestSchedule(kind="daily", weekday=None, time="09:00")),
    ("digest daily 9:00", DigestSchedule(kind="daily", weekday=None, time="09:00")),
    ("digest daily 23:59", DigestSchedule(kind="daily", weekday=None, time="23:59")),
    ("digest weekly monday 09:00", DigestSchedule(kind="weekly", weekday=0, time="09:00")),
    ("digest weekly Fri 17:30", DigestSchedule(kind="weekly", weekday=4, time="17:30")),
    ("digest weekly SUNDAY 0:05", DigestSchedule(kind="weekly", weekday=6, time="00:05")),
    ("digest off", DigestOff()),
    ("digest off weekly", DigestOff(kind="weekly")),
    # ... by source: each source's biggest mover too
    ("digest daily 09:00 by source", DigestSchedule(kind="daily", weekday=None, time="09:00",
                                                    by="source")),
    ("digest weekly monday 9:00 BY Source", DigestSchedule(kind="weekly", weekday=0,
                                                           time="09:00", by="source")),
    ("digest now weekly by source", DigestNow(kind="weekly", by="source")),
    ("digest now by source", DigestNow(kind="daily", by="source")),
    # alert KPI OP VALUE [daily|weekly|monthly] [for N]
    ("alert cpl > 20", AlertAdd(kpi="cpl", op=">", threshold="20")),
    ("alert cpl &gt; 20", AlertAdd(kpi="cpl", op=">", threshold="20")),
    ("alert cpl &gt;= 20", AlertAdd(kpi="cpl", op=">=", threshold="20")),
    ("alert show_rate &lt; 60%", AlertAdd(kpi="show_rate", op="<", threshold="60%")),
    ("alert cpl&lt;=$20", AlertAdd(kpi="cpl", op="<=", threshold="$20")),
    ("alert cpl ≥ 20", AlertAdd(kpi="cpl", op=">=", threshold="20")),
    (
        "alert cpl > 20 weekly for 3",
        AlertAdd(kpi="cpl", op=">", threshold="20", period="weekly", for_periods=3),
    ),
    ("alert cpl > 20 monthly", AlertAdd(kpi="cpl", op=">", threshold="20", period="monthly")),
    ("alert cpl > 20 7d", AlertAdd(kpi="cpl", op=">", threshold="20", period="7d")),
    ("alert cpl > 20 30d", AlertAdd(kpi="cpl", op=">", threshold="20", period="30d")),
    (
        "alert cpl > 20 <@U123|ana>",
        AlertAdd(kpi="cpl", op=">", threshold="20", mention="<@U123>"),
    ),
    (
        "alert cpl > 20 <!subteam^S123|@marketing>",
        AlertAdd(kpi="cpl", op=">", threshold="20", mention="<!subteam^S123>"),
    ),
    (
        "alert cpl > 20 <!channel>",
        AlertAdd(kpi="cpl", op=">", threshold="20", mention="<!channel>"),
    ),
    (
        "alert cpl > 20 source=Facebook",
        AlertAdd(kpi="cpl", op=">", threshold="20", dims=(("source", "facebook"),)),
    ),
    (
        "alert leads down 20% weekly",
        AlertAdd(kpi="leads", op="down", threshold="20%", period="weekly"),
    ),
    ("alert revenue UP 10%", AlertAdd(kpi="revenue", op="up", threshold="10%")),
    # alert KPI unusual [daily|weekly] [low|medium|high] [for N] ...
    ("alert leads unusual", AlertAdd(kpi="leads", op="unusual", threshold="")),
    (
        "alert leads Unusual weekly HIGH for 2",
        AlertAdd(kpi="leads", op="unusual", threshold="", period="weekly", for_periods=2,
                 sensitivity="high"),
    ),
    (
        "alert cpl unusual low source=facebook",
        AlertAdd(kpi="cpl", op="unusual", threshold="", sensitivity="low",
                 dims=(("source", "facebook"),)),
    ),
    ("alert", AlertForm()),
    # alerts · alert remove ID · alert snooze ID DURATION
    ("alerts", Alerts()),
    ("alert remove 3", AlertRemove(rule_id=3)),
    ("alert remove #3", AlertRemove(rule_id=3)),
    ("alert snooze 3 1d", AlertSnooze(rule_id=3, duration="1d")),
    ("alert snooze 3 7d", AlertSnooze(rule_id=3, duration="7d")),
    ("alert snooze 3 12H", AlertSnooze(rule_id=3, duration="12h")),
    ("alert snooze 3 2w", AlertSnooze(rule_id=3, duration="2w")),
    # goal KPI VALUE [weekly|monthly]
    ("goal leads 500", Goal(kpi="leads", value="500", period="monthly")),
    ("goal revenue $50k weekly", Goal(kpi="revenue", value="$50k", period="weekly")),
    ("goals", Goals()),
    # goal remove NAME [weekly|monthly]
    ("goal remove revenue", GoalRemove(key="revenue")),
    ("goal Remove Revenue weekly", GoalRemove(key="revenue", period="weekly")),
    ("goal remove 500 monthly", Goal(kpi="remove", value="500", period="monthly")),
    ("goal remove $5k", Goal(kpi="remove", value="$5k", period="monthly")),
    # track NAME ... (spaces or commas), or alone to list
    ("track leads spend sales", Track(metrics=("leads", "spend", "sales"))),
    ("track leads,spend, sales", Track(metrics=("leads", "spend", "sales"))),
    ("track Leads leads LEADS", Track(metrics=("leads",))),
    ("track", Tracking()),
    ("track ,", Tracking()),
    # metrics · define KEY = FORMULA
    ("metrics", Metrics()),
    ("define big_mac = revenue / 5.58", Define(key="big_mac", formula="revenue / 5.58")),
    ("define Big_Mac=revenue/5.58", Define(key="big_mac", formula="revenue/5.58")),
    # define ... [as UNIT] [higher|lower] · metric add KEY [UNIT] [sum|last|mean] [LABEL] · remove
    ("define cps = spend / sales as currency lower",
     Define(key="cps", formula="spend / sales", unit="currency", better="lower")),
    ("define cart_rate = sales / add_to_carts higher as percent",
     Define(key="cart_rate", formula="sales / add_to_carts", unit="percent", better="higher")),
    ("define nps_gap = nps - 50 as number", Define(key="nps_gap", formula="nps - 50", unit="score")),
    ("metric add add_to_carts", MetricAdd(key="add_to_carts")),
    ("metric add Add_To_Carts count sum Add to carts",
     MetricAdd(key="add_to_carts", label="Add to carts")),
    ("metric add mrr_eu currency last MRR in Europe",
     MetricAdd(key="mrr_eu", unit="currency", aggregation="last", label="MRR in Europe")),
    ("metric add onboarding_days days mean", MetricAdd(key="onboarding_days", unit="days",
                                                       aggregation="mean")),
    ("metric remove add_to_carts", MetricRemove(key="add_to_carts")),
    # dimension add NAME [VALUE ...] · dimension remove NAME · dimensions
    ("dimension add temperature", DimensionAdd(key="temperature")),
    ("dimension add Temperature Warm, cold", DimensionAdd(key="temperature",
                                                          values=("warm", "cold"))),
    ("dimension remove temperature", DimensionRemove(key="temperature")),
    ("dimensions", Dimensions()),
    ("dimension", Dimensions()),
    # a workspace's own dimension in a report or an alert is checked where it is known
    ("report week by temperature", Report(range="week", by="temperature")),
    ("report week leads temperature=Warm", Report(range="week", kpis=("leads",),
                                                  dims=(("temperature", "warm"),))),
    # history [METRIC] · undo
    ("history", History()),
    ("history Leads", History(metric="leads")),
    ("undo", Undo()),
    # export [RANGE]
    ("export", Export()),
    ("export last-month", Export(range="last-month")),
    # tz ZONE · settings
    ("tz America/Bogota", Tz(zone="America/Bogota")),
    ("settings", Settings()),
    # help
    ("help", Help()),
    ("HELP alerts", Help()),
]


@pytest.mark.parametrize(("text", "command"), ROWS)
def test_each_row_of_the_grammar(text: str, command: Command) -> None:
    assert parse_command(text) == command


ERRORS: list[tuple[str, str]] = [
    ("reprot", "I don't know `reprot`. Did you mean `report`? Try `/kpi help`."),
    ("alrets", "Did you mean `alerts`?"),
    ("xyzzy", "I don't know `xyzzy`. Try `/kpi help`."),
    ("leads=12", "start with `log`"),
    ("x" * 4001, "That command is too long (4,001 characters; the limit is 4,000)"),
    # log
    ("log leads 12", "log leads=12 spend=340"),
    ("log leads:12", "I can't read `leads:12`"),
    ("log leads=", "`leads` has no value"),
    ("log leads=12 leads=13", "`leads` is given twice"),
    ("log leads=12 LEADS=13", "`leads` is given twice"),
    ("log leads=1 date=today date=yesterday", "`date` is given twice"),
    ("log leads=12 date=2026-02-30", "2026-02-30 is not a date: February 2026 has 28 days"),
    ("log leads=12 date=2026-13-01", "2026-13-01 is not a date: months go from 01 to 12"),
    ("log leads=12 date=tomorrow", "`date=tomorrow` is not a date I can use"),
    ("log leads=12 date=yesterdy", "Did you mean `yesterday`?"),
    ("log leads=12 sorce=facebook", "Did you mean `source`?"),
    ("log lea$ds=12", "`lea$ds` is not a metric name"),
    ("log date=today source=facebook", "Nothing to log"),
    ("log leads=12 rep=john", "`rep=john` needs a Slack user"),
    ("log leads=12 source=", "`source` has no value"),
    (
        "log " + " ".join(f"m{i}=1" for i in range(61)),
        "That is 61 numbers in one log; the limit is 60",
    ),
    # report, chart, export
    ("report last-weak", "Did you mean `last-week`?"),
    ("report 0d", "`0d` is not a period I can use"),
    ("report 367d", "give 1 to 366 days"),
    ("report 2026-02-01..2026-01-01", "ends before it starts"),
    ("report 2026-01-01..2026-02-30", "2026-02-30 is not a date"),
    ("report 2026-01-01..", "write two dates"),
    ("report week month", "Give one period, not both `week` and `month`"),
    ("report week by", "is not a dimension"),
    ("report week by sauce", "Did you mean `source`?"),
    ("report by source by rep", "Break it down by one dimension at a time"),
    ("report sauce=facebook", "Did you mean `source`?"),
    ("report source=facebook by source", "keeps one source already"),
    ("report source=a source=b", "`source` is given twice"),
    ("chart", "Which KPI or metric should I chart?"),
    ("chart cpl ctr", "one KPI or metric at a time"),
    ("chart leads by sorce", "`sorce` is not a dimension"),
    ("dimension add source", "reserved word"),
    ("dimension add date", "reserved word"),
    ("dimension add 9lives", "can't be a dimension name"),
    ("dimension add tier gold gold", "`gold` is given twice"),
    ("dimension remove", "Name the dimension"),
    ("dimension remove tier gold", "after `dimension remove`"),
    ("dimension rename tier", "I don't know `dimension rename`"),
    ("report week by Temp-x", "is not a dimension"),
    ("chart leads by sorce", "Did you mean `source`?"),
    ("chart leads by", "Use `source` or `rep` or `campaign` or `product`"),
    ("chart leads source=facebook", "A chart shows every value of a dimension"),
    ("chart leads by source by rep", "one dimension"),
    ("export 30d cpl", "I don't know what to do with `cpl` after `export`"),
    # digest
    ("digest", "What should the digest do?"),
    ("digest sometimes", "I don't know `digest sometimes`"),
    ("digest dialy 09:00", "Did you mean `daily`?"),
    ("digest daily", "At what time?"),
    ("digest daily 24:00", "`24:00` is not a time"),
    ("digest daily 9am", "`9am` is not a time"),
    ("digest daily 09:00 now", "I don't know what to do with `now`"),
    ("digest weekly 09:00", "Which day and time?"),
    ("digest weekly funday 09:00", "`funday` is not a day of the week"),
    ("digest weekly tues 09:00", "Did you mean `tuesday`?"),
    ("digest now hourly", "`hourly` is not a digest"),
    ("digest off monthly", "`monthly` is not a digest"),
    ("digest daily 09:00 by", "By what? A digest breaks down by source"),
    ("digest daily 09:00 by rep", "A digest breaks down by source only"),
    ("digest daily 09:00 by source now", "I don't know what to do with `now`"),
    ("digest daily by source", "At what time?"),
    ("digest weekly 09:00 by source", "Which day and time?"),
    # alerts
    ("alert cpl 20", "needs a comparison"),
    ("alert cpl = 20", "`=` is not a comparison"),
    ("alert cpl >", "needs a number"),
    ("alert cpl > 20 hourly", "I don't know what `hourly` means in an alert"),
    ("alert cpl > 20 weekly monthly", "Give one period"),
    ("alert cpl > 20 for", "`for` takes a number of periods"),
    ("alert cpl > 20 for 0", "`for` takes a number of periods"),
    ("alert cpl > 20 @ana", "I can't tell who `@ana` is"),
    ("alert cpl > 20 <!channel> <!here>", "one person or group"),
    ("alert cpl > 20 sorce=facebook", "Did you mean `source`?"),
    ("alert leads down -5%", "positive percent"),
    ("alert leads down 5 apples", "I don't know what `apples` means"),
    ("alert leads unusual extreme", "The sensitivity is `low`, `medium` (the default) or `high`"),
    ("alert leads unusual hihg", "Did you mean `high`?"),
    ("alert leads unusual monthly", "`unusual` compares a day with the same weekday"),
    ("alert leads unusual low high", "Give one sensitivity"),
    ("alert remove", "Which alert?"),
    ("alert remove three", "`three` is not an alert number"),
    ("alert remove 3 4", "I don't know what to do with `4`"),
    ("alert snooze 3", "for how long?"),
    ("alert snooze 3 2y", "`2y` is not a snooze time"),
    ("alert snooze 3 0d", "`0d` is not a snooze time"),
    # goal, define, history, tz, and commands that take nothing more
    ("goal leads", "A goal needs a KPI and a target"),
    ("goal remove", "Which goal? Write it like `/kpi goal remove revenue`"),
    ("goal remove revenue daily", "`daily` is not a goal period"),
    ("goal remove revenue weekly now", "I don't know what to do with `now`"),
    ("track leads sp@nd", "`sp@nd` is not a metric name"),
    ("track " + " ".join(f"m{i}" for i in range(61)), "That is 61 metrics"),
    ("goal leads 500 yearly", "`yearly` is not a goal period"),
    ("goal leads 500 weekly now", "I don't know what to do with `now`"),
    ("define big_mac", "Write a definition like"),
    ("define = revenue", "Write a definition like"),
    ("define 2x = revenue", "`2x` can't be a KPI name"),
    ("define source = revenue", "reserved word"),
    ("define cps = spend / sales as dollars", "`dollars` is not a unit"),
    ("metric", "Say what to do with a metric"),
    ("metric drop carts", "Say what to do with a metric"),
    ("metric add 2carts", "`2carts` can't be a metric name"),
    ("metric add rep", "reserved word"),
    ("metric add carts curency", "Did you mean `currency`?"),
    ("metric remove carts now", "I don't know what to do with `now`"),
    ("history leads spend", "I don't know what to do with `spend` after `history`"),
    ("tz", "Which time zone?"),
    ("tz New York", "Time zone names have no spaces"),
    ("alerts now", "I don't know what to do with `now` after `alerts`"),
    ("metrics all", "`all` after `metrics`"),
    ("undo twice", "`twice` after `undo`"),
    ("settings open", "`open` after `settings`"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_each_error_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(CommandError) as refused:
        parse_command(text)
    assert message in str(refused.value)


def test_sixty_numbers_fit_in_one_log() -> None:
    command = parse_command("log " + " ".join(f"m{i}=1" for i in range(60)))
    assert isinstance(command, Log)
    assert len(command.values) == 60


def test_every_subcommand_is_listed_for_help_and_suggestions() -> None:
    assert set(COMMANDS) >= {"log", "report", "chart", "digest", "alert", "alerts", "goal"}
    assert set(COMMANDS) >= {"metrics", "define", "history", "undo", "export", "tz"}
    assert set(COMMANDS) >= {"settings", "help"}
    assert RANGES == (
        "today",
        "yesterday",
        "week",
        "last-week",
        "month",
        "last-month",
        "7d",
        "30d",
        "90d",
    )


# --- properties -------------------------------------------------------------------------------

KEYWORDS = [*COMMANDS, *RANGES, *DIMENSIONS, "now", "off", "daily", "weekly", "monthly"]
KEYWORDS += ["for", "up", "down", "remove", "snooze", "date", "mon", "&lt;", "&gt;", "&amp;"]
GRAMMAR_PIECES = st.one_of(
    st.sampled_from(KEYWORDS),
    st.sampled_from(list("=%$,.<>@#!^|:-_ \"'\u201c\u00a0")),
    st.text(alphabet="0123456789", min_size=1, max_size=4),
    st.sampled_from(["<@U123|ana>", "<!subteam^S1|@g>", "<!channel>", "2026-02-30", "9:00"]),
)
GRAMMAR_TEXT = st.lists(GRAMMAR_PIECES, max_size=30).map("".join)
SPACED_TEXT = st.lists(GRAMMAR_PIECES, max_size=30).map(" ".join)


@given(st.one_of(st.text(), GRAMMAR_TEXT, SPACED_TEXT))
def test_any_text_is_a_command_or_a_command_error(text: str) -> None:
    try:
        command = parse_command(text)
    except CommandError as refused:
        assert str(refused)
    else:
        assert isinstance(command, Command)


RESERVED = {"date", *DIMENSIONS}
METRIC_KEYS = st.from_regex(r"[a-z_]{1,20}", fullmatch=True).filter(lambda k: k not in RESERVED)
NUMERIC_VALUES = st.one_of(
    st.integers(-(10**9), 10**9).map(str),
    st.integers(0, 10**9).map(lambda n: f"{n:,}"),
    st.integers(0, 10**9).map(lambda n: f"${n:,}"),
    st.decimals(0, 10**6, places=2).map(str),
    st.sampled_from(["1.5k", "2m", "1b", "12%", "12.5", "€40", "0"]),
)
FREE_TEXT = st.from_regex(r"[a-z0-9]+( [a-z0-9]+){0,2}", fullmatch=True)


@st.composite
def logs(draw: st.DrawFn) -> Log:
    keys = draw(st.lists(METRIC_KEYS, min_size=1, max_size=8, unique=True))
    values = tuple((key, draw(NUMERIC_VALUES)) for key in keys)
    when = draw(st.one_of(st.none(), st.sampled_from(["today", "yesterday"]), st.dates().map(str)))
    dims: list[tuple[str, str]] = []
    for dimension in draw(st.lists(st.sampled_from(DIMENSIONS), unique=True)):
        if dimension == "rep":
            dims.append((dimension, draw(st.from_regex(r"U[A-Z0-9]{2,10}", fullmatch=True))))
        else:
            dims.append((dimension, draw(FREE_TEXT)))
    return Log(values=values, date=when, dims=tuple(dims))


def render(log: Log, separator: str, equals: str) -> str:
    """Log text the way a person might type it: quotes only where a value has a space."""
    pairs = list(log.values)
    if log.date is not None:
        pairs.append(("date", log.date))
    pairs += [(key, f'"{value}"' if " " in value else value) for key, value in log.dims]
    return "log " + separator.join(f"{key}{equals}{value}" for key, value in pairs)


@given(logs(), st.sampled_from([" ", ",", ", ", " ,"]), st.sampled_from(["=", " = ", "= "]))
def test_a_rendered_log_parses_back_to_itself(log: Log, separator: str, equals: str) -> None:
    assert parse_command(render(log, separator, equals)) == log


@given(st.lists(METRIC_KEYS, min_size=1, max_size=60),
       st.lists(st.sampled_from([" ", ",", ", ", " ,", "  ", ",,", "\u00a0"]), min_size=60,
                max_size=60))
def test_a_typed_track_list_parses_to_its_names_in_order_once_each(
    keys: list[str], separators: list[str]
) -> None:
    typed = "track " + "".join(f"{key.upper() if i % 2 else key}{separators[i]}"
                               for i, key in enumerate(keys))
    assert parse_command(typed) == Track(metrics=tuple(dict.fromkeys(keys)))


@given(st.from_regex(r"[a-z][a-z0-9_]{0,39}", fullmatch=True),
       st.lists(st.from_regex(r"[a-z0-9_]{1,20}", fullmatch=True), unique=True, max_size=25),
       st.sampled_from([" ", ", ", ","]))
def test_a_typed_dimension_parses_to_its_name_and_values_in_order(
    key: str, values: list[str], separator: str
) -> None:
    typed = f"dimension add {key.upper()} " + separator.join(v.upper() for v in values)
    if key in ("date", *DIMENSIONS):
        with pytest.raises(CommandError):
            parse_command(typed)
    else:
        assert parse_command(typed) == DimensionAdd(key=key, values=tuple(values))
