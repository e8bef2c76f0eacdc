"""What moved and why, and what-if: worked examples and the property that splits add up.

Every split must add up to the total percent change, whatever the method, so the bot can say
"CPL +24%: spend +10%, leads -11%" without a remainder nobody can explain.
"""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.demo import sample_writes
from kpis.catalogue import DEFAULT, Catalogue, custom_kpi
from kpis.explain import (
    FUNNEL,
    FUNNEL_TARGETS,
    ExplainError,
    Explanation,
    Method,
    breakdown,
    breakdown_sentence,
    explain,
    explain_funnel,
    funnel_holds,
    funnel_steps,
    sentence,
)
from kpis.periods import Period
from kpis.rollup import Entry, formula_scope, metric_values, roll_up
from kpis.whatif import OUTCOMES, STEP_KEYS, STEPS, WhatIfError, check_changes, project

TODAY = date(2026, 3, 10)
LAST_30 = Period.rolling(30, TODAY)
PREVIOUS_30 = LAST_30.previous()
FUNNEL_COUNTS = ("impressions", "clicks", "page_views", "leads", "bookings", "shows", "sales")


def demo_months() -> tuple[dict[str, float], dict[str, float]]:
    """Metric totals of the demo business for the 30 days before LAST_30, and LAST_30."""
    entries = [
        Entry(w.metric, w.day, w.value, w.author, w.dims)
        for day in sample_writes(TODAY, days=60)
        for w in day
    ]
    old = formula_scope(DEFAULT, roll_up(entries, PREVIOUS_30, DEFAULT))
    new = formula_scope(DEFAULT, roll_up(entries, LAST_30, DEFAULT))
    return ({k: v for k, v in old.items() if v is not None and k != "days"},
            {k: v for k, v in new.items() if v is not None and k != "days"})


OLD, NEW = demo_months()


def assert_adds_up(explanation: Explanation | None) -> Explanation:
    assert explanation is not None
    points = math.fsum(c.points for c in explanation.contributions)
    assert points == pytest.approx(explanation.total_pct, rel=1e-9, abs=1e-9)
    ranked = [abs(c.points) for c in explanation.contributions]
    assert ranked == sorted(ranked, reverse=True)
    return explanation


# --- KPI splits -----------------------------------------------------------------------------


def test_cpl_spend_up_leads_down() -> None:
    result = assert_adds_up(
        explain(DEFAULT, "cpl", {"spend": 1000, "leads": 100}, {"spend": 1100, "leads": 89})
    )
    assert result.method is Method.LOG
    assert result.total_pct == pytest.approx((1.10 / 0.89 - 1) * 100)
    assert result.total_pct == pytest.approx(23.6, abs=0.05)
    points = {c.name: c.points for c in result.contributions}
    changes = {c.name: c.change_pct for c in result.contributions}
    assert changes == pytest.approx({"spend": 10.0, "leads": -11.0})
    total_log = math.log(1.10 / 0.89)
    assert points["spend"] == pytest.approx(result.total_pct * math.log(1.10) / total_log)
    assert points["leads"] == pytest.approx(result.total_pct * -math.log(0.89) / total_log)
    assert points["leads"] > points["spend"] > 0
    assert sentence(result, {"cpl": "CPL"}) == "CPL +24%: leads -11%, spend +10%"


@pytest.mark.parametrize(
    ("kpi", "old", "new", "method"),
    [
        ("cpl", {"spend": 1000, "leads": 100}, {"spend": 1000, "leads": 80}, Method.LOG),
        (
            "cpm",
            {"spend": 500, "impressions": 40_000},
            {"spend": 650, "impressions": 52_000},
            Method.LOG,
        ),
        ("roas", {"revenue": 3600, "spend": 960}, {"revenue": 4200, "spend": 1200}, Method.LOG),
        (
            "cac",
            {"spend": 10_000, "new_customers": 200, "paid:new_customers": 200},
            {"spend": 9000, "new_customers": 250, "paid:new_customers": 250},
            Method.LOG,
        ),
        (
            "blended_cac",
            {"spend": 10_000, "organic_spend": 5000, "new_customers": 500},
            {"spend": 12_000, "organic_spend": 4000, "new_customers": 520},
            Method.LOG,
        ),
        (
            "marketing_roi",
            {"revenue": 3000, "spend": 1000},
            {"revenue": 3300, "spend": 1200},
            Method.LOG,
        ),
        (
            "ad_profit",
            {"cash_collected": 3600, "spend": 960},
            {"cash_collected": 3000, "spend": 1100},
            Method.SHAPLEY,
        ),
        (
            "net_profit",
            {"revenue": 10_000, "expenses": 7000},
            {"revenue": 11_000, "expenses": 7700},
            Method.SHAPLEY,
        ),
        (
            "nps",
            {"nps_promoters": 3, "nps_passives": 2, "nps_detractors": 5},
            {"nps_promoters": 6, "nps_passives": 2, "nps_detractors": 4},
            Method.SHAPLEY,
        ),
        (
            "retention_rate",
            {"customers_lost": 10, "opening:active_customers": 200},
            {"customers_lost": 14, "opening:active_customers": 210},
            Method.SHAPLEY,
        ),
        (
            "ltv_cac",
            {
                "revenue": 9000,
                "active_customers": 150,
                "customers_lost": 6,
                "opening:active_customers": 140,
                "spend": 2000,
                "new_customers": 16,
                "paid:new_customers": 16,
            },
            {
                "revenue": 9900,
                "active_customers": 160,
                "customers_lost": 9,
                "opening:active_customers": 150,
                "spend": 2100,
                "new_customers": 16,
                "paid:new_customers": 16,
            },
            Method.LOG,
        ),
        (
            "runway_months",
            {"cash_balance": 40_000, "expenses": 30_000, "days": 30},
            {"cash_balance": 36_000, "expenses": 33_000, "days": 30},
            Method.LOG,
        ),
    ],
)
def test_splits_add_up(
    kpi: str, old: dict[str, float], new: dict[str, float], method: Method
) -> None:
    result = assert_adds_up(explain(DEFAULT, kpi, old, new))
    assert result.method is method
    assert result.contributions


def test_a_sum_inside_a_quotient_is_one_term_named_by_its_text() -> None:
    result = assert_adds_up(
        explain(
            DEFAULT,
            "blended_cac",
            {"spend": 1000, "organic_spend": 500, "new_customers": 10},
            {"spend": 1100, "organic_spend": 400, "new_customers": 12},
        )
    )
    assert [c.name for c in result.contributions] == ["new_customers", "(spend + organic_spend)"]
    assert result.contributions[1].points == 0.0


def test_a_factor_reaching_zero_falls_back_to_shapley() -> None:
    result = assert_adds_up(
        explain(
            DEFAULT,
            "marketing_roi",
            {"revenue": 3000, "spend": 1000},
            {"revenue": 1000, "spend": 1000},
        )
    )
    assert result.method is Method.SHAPLEY
    assert result.total_pct == -100.0
    assert [c.name for c in result.contributions] == ["revenue", "spend"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"spend": 50, "leads": 0}, {"spend": 60, "leads": 3}),  # no CPL before: no percent
        ({"spend": 50, "leads": 5}, {"spend": 60, "leads": 0}),  # no CPL now
        ({"spend": 50}, {"spend": 60, "leads": 3}),  # never logged
        ({"spend": 0, "leads": 5}, {"spend": 60, "leads": 3}),  # a start at 0 has no percent
        ({"spend": 50, "leads": 5}, {"spend": math.nan, "leads": 3}),
        ({"spend": None, "leads": 5}, {"spend": 60, "leads": None}),
    ],
)
def test_missing_or_zero_data_gives_none(
    old: dict[str, float | None], new: dict[str, float | None]
) -> None:
    assert explain(DEFAULT, "cpl", old, new) is None


def test_a_logged_metric_moves_without_a_split() -> None:
    result = explain(DEFAULT, "refunds", {"refunds": 100}, {"refunds": 150})
    assert result is not None and result.method is Method.NONE
    assert result.total_pct == 50.0 and result.contributions == ()
    assert sentence(result) == "refunds +50%"
    assert explain(DEFAULT, "refunds", {"refunds": 100}, {}) is None


def test_an_unknown_key_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ExplainError, match="Did you mean `cpl`"):
        explain(DEFAULT, "cpll", {}, {})
    with pytest.raises(ExplainError, match="Did you mean `leads`"):
        funnel_steps("lead")


def test_custom_kpis_split_too() -> None:
    catalogue = Catalogue.build(
        kpis=[custom_kpi("sales_per_rep_hour", "sales * sales / actual_hours")]
    )
    result = assert_adds_up(
        explain(
            catalogue,
            "sales_per_rep_hour",
            {"sales": 10, "actual_hours": 100},
            {"sales": 11, "actual_hours": 110},
        )
    )
    points = {c.name: c.points for c in result.contributions}
    assert points["sales"] == pytest.approx(-2 * points["actual_hours"])


# --- the funnel -----------------------------------------------------------------------------


def test_funnel_identity_holds_in_the_catalogue() -> None:
    assert all(funnel_holds(DEFAULT, target) for target in FUNNEL_TARGETS)
    assert funnel_steps("sales") == tuple(rate for rate, _ in FUNNEL)
    assert funnel_steps("revenue")[-1] == "aov"
    broken = Catalogue.build(kpis=[custom_kpi("ctr", "clicks / reach")])
    assert not funnel_holds(broken, "sales")
    assert explain_funnel(broken, OLD, NEW) is None


def test_funnel_identity_on_demo_numbers() -> None:
    for values in (OLD, NEW):
        rates = [
            values[count] / values[previous]
            for previous, count in zip(FUNNEL_COUNTS, FUNNEL_COUNTS[1:], strict=False)
        ]
        assert values["impressions"] * math.prod(rates) == pytest.approx(values["sales"])
        assert values["sales"] * values["revenue"] / values["sales"] == pytest.approx(
            values["revenue"]
        )


@pytest.mark.parametrize("target", FUNNEL_TARGETS)
def test_funnel_split_on_demo_numbers(target: str) -> None:
    result = assert_adds_up(explain_funnel(DEFAULT, OLD, NEW, target))
    assert result.method is Method.LOG
    assert result.total_pct == pytest.approx((NEW[target] / OLD[target] - 1) * 100)
    assert {c.name for c in result.contributions} == {"impressions", *funnel_steps(target)}
    assert explain(DEFAULT, target, OLD, NEW) == result


def test_funnel_split_by_hand() -> None:
    old = {
        "impressions": 100_000,
        "clicks": 1000,
        "page_views": 800,
        "leads": 100,
        "bookings": 30,
        "shows": 20,
        "sales": 5,
    }
    new = {
        "impressions": 110_000,
        "clicks": 1100,
        "page_views": 880,
        "leads": 99,
        "bookings": 29.7,
        "shows": 19.8,
        "sales": 6.1875,
    }
    result = assert_adds_up(explain_funnel(DEFAULT, old, new))
    changes = {c.name: c.change_pct for c in result.contributions}
    assert changes == pytest.approx(
        {
            "impressions": 10.0,
            "ctr": 0.0,
            "view_rate": 0.0,
            "landing_cvr": -10.0,
            "booking_rate": 0.0,
            "show_rate": 0.0,
            "close_rate": 25.0,
        }
    )
    assert result.total_pct == pytest.approx((1.10 * 0.90 * 1.25 - 1) * 100)
    assert sentence(result) == "sales +24%: close_rate +25%, landing_cvr -10%, impressions +10%"


def test_funnel_with_no_sales_now_splits_without_logs() -> None:
    old = {
        "impressions": 1000,
        "clicks": 10,
        "page_views": 8,
        "leads": 4,
        "bookings": 2,
        "shows": 2,
        "sales": 1,
    }
    new = {**old, "sales": 0}
    result = assert_adds_up(explain_funnel(DEFAULT, old, new))
    assert result.method is Method.SHAPLEY and result.total_pct == -100.0
    assert result.contributions[0].name == "close_rate"


def test_funnel_with_a_broken_step_reports_the_change_unsplit() -> None:
    old = {
        "impressions": 1000,
        "clicks": 10,
        "page_views": 8,
        "leads": 4,
        "bookings": 2,
        "shows": 2,
        "sales": 1,
    }
    result = explain_funnel(DEFAULT, old, {"impressions": 1000, "leads": 5}, "leads")
    assert result is not None and result.method is Method.NONE and result.total_pct == 25.0
    assert explain_funnel(DEFAULT, old, {}, "leads") is None


# --- dimension breakdown ----------------------------------------------------------------------


def test_breakdown_ranks_sources_by_change() -> None:
    result = breakdown(
        "leads",
        "source",
        {"facebook": 60, "google": 40},
        {"facebook": 40, "google": 49, "referral": 3},
    )
    assert [d.value for d in result.drivers] == ["facebook", "google", "referral"]
    assert result.total_pct == -8.0
    assert math.fsum(d.points or 0.0 for d in result.drivers) == pytest.approx(result.total_pct)
    assert math.fsum(d.share or 0.0 for d in result.drivers) == pytest.approx(1.0)
    assert result.drivers[0].share == pytest.approx(20 / 8)
    assert result.drivers[2].change_pct is None
    assert (
        breakdown_sentence(result, {"leads": "Leads"})
        == "Leads -8%: facebook -20, google +9, referral +3"
    )


def test_breakdown_of_nothing() -> None:
    result = breakdown("leads", "source", {}, {"facebook": 3})
    assert result.total_pct is None and result.drivers[0].points is None
    flat = breakdown("leads", "source", {"a": 5, "b": 5}, {"a": 8, "b": 2})
    assert flat.total_pct == 0.0 and all(d.share is None for d in flat.drivers)


def test_breakdown_on_demo_sources() -> None:
    by_source: dict[str, list[dict[str, float]]] = {}
    for source in ("facebook", "google"):
        entries = [
            Entry(w.metric, w.day, w.value, w.author)
            for day in sample_writes(TODAY, days=60)
            for w in day
            if w.dims == (("source", source),)
        ]
        by_source[source] = [
            metric_values(DEFAULT, roll_up(entries, p, DEFAULT)) for p in (PREVIOUS_30, LAST_30)
        ]
    result = breakdown(
        "leads",
        "source",
        {s: v[0]["leads"] for s, v in by_source.items()},
        {s: v[1]["leads"] for s, v in by_source.items()},
    )
    assert result.old == OLD["leads"] and result.new == NEW["leads"]


# --- what-if --------------------------------------------------------------------------------


def test_what_if_at_zero_is_the_baseline() -> None:
    for changes in ({}, dict.fromkeys(STEP_KEYS, 0.0)):
        result = project(NEW, changes)
        assert result.compounding == 1.0 and result.sales_factor == 1.0
        assert dict(result.after) == dict(result.before)
        for outcome in result.outcomes:
            assert outcome.after == outcome.before
    assert [o.key for o in project(NEW, {}).outcomes] == list(OUTCOMES)
    assert project(NEW, {}).outcome("cac").before == pytest.approx(
        NEW["spend"] / NEW["new_customers"]
    )


def test_what_if_compounds() -> None:
    result = project(NEW, {"ctr": 10.0, "show_rate": 10.0, "close_rate": 10.0})
    assert result.compounding == pytest.approx(1.331)
    assert result.sales_factor == pytest.approx(1.331)
    assert result.outcome("leads").change_pct == pytest.approx(10.0)
    assert result.outcome("sales").change_pct == pytest.approx(33.1)
    assert result.outcome("revenue").change_pct == pytest.approx(33.1)
    assert result.outcome("roas").change_pct == pytest.approx(33.1)
    assert result.outcome("cac").after == pytest.approx(result.outcome("cac").before / 1.331)
    assert (
        result.after["spend"] == NEW["spend"] and result.after["impressions"] == NEW["impressions"]
    )


def test_what_if_profit_and_aov() -> None:
    baseline = {
        "impressions": 1e6,
        "clicks": 10_000,
        "page_views": 8000,
        "leads": 1000,
        "bookings": 300,
        "shows": 200,
        "sales": 50,
        "new_customers": 50,
        "revenue": 100_000,
        "spend": 12_000,
        "cogs": 20_000,
        "expenses": 99_999,
    }
    result = project(baseline, {"close_rate": 5.0, "aov": 25.0})
    assert result.compounding == pytest.approx(1.05)
    assert result.outcome("revenue").after == pytest.approx(100_000 * 1.05 * 1.25)
    assert result.outcome("profit").before == 100_000 - 12_000 - 20_000
    assert result.outcome("profit").after == pytest.approx(131_250 - 12_000 - 21_000)
    assert result.outcome("leads").change_pct == 0.0


def test_what_if_without_money_reports_counts() -> None:
    result = project({"leads": 10, "sales": 0}, {"close_rate": 50})
    assert result.sales_factor is None
    assert result.outcome("sales").after == 0.0
    assert result.outcome("cac").after is None and result.outcome("profit").after is None


def test_what_if_flags_rates_past_100_percent() -> None:
    result = project(
        {"impressions": 100, "clicks": 5, "bookings": 10, "shows": 9}, {"show_rate": 20}
    )
    assert result.over_100 == ("show_rate",)


@pytest.mark.parametrize(
    ("changes", "message", "suggestion"),
    [
        ({"clse_rate": 5.0}, "Did you mean `close_rate`", "close_rate"),
        ({"CTR ": 5.0, "ctr": 1.0}, "given twice", None),
        ({"show": 5.0}, "Did you mean `show_rate`", "show_rate"),
        ({"banana": 5.0}, "Valid steps: ctr, view_rate", None),
        ({"ctr": -150.0}, "-100% or more", None),
        ({"ctr": math.inf}, "-100% or more", None),
    ],
)
def test_what_if_refuses(changes: dict[str, float], message: str, suggestion: str | None) -> None:
    with pytest.raises(WhatIfError, match=message) as caught:
        project({}, changes)
    assert caught.value.suggestion == suggestion


def test_steps_for_a_form() -> None:
    assert [s.key for s in STEPS] == [*(rate for rate, _ in FUNNEL), "aov"]
    assert all(s.label for s in STEPS)
    assert check_changes({" Close_Rate": 5})["close_rate"] == 5.0


# --- properties -----------------------------------------------------------------------------

positive = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)
counts = st.tuples(*(positive for _ in FUNNEL_COUNTS))


@given(positive, positive, positive, positive)
def test_cpl_split_always_adds_up(spend: float, leads: float, spend2: float, leads2: float) -> None:
    assert_adds_up(
        explain(
            DEFAULT, "cpl", {"spend": spend, "leads": leads}, {"spend": spend2, "leads": leads2}
        )
    )


@given(counts, counts, st.sampled_from(FUNNEL_TARGETS))
def test_funnel_split_always_adds_up(
    old: tuple[float, ...], new: tuple[float, ...], target: str
) -> None:
    old_values = {**dict(zip(FUNNEL_COUNTS, old, strict=True)), "revenue": old[-1] * 2}
    new_values = {**dict(zip(FUNNEL_COUNTS, new, strict=True)), "revenue": new[-1] * 3}
    assert_adds_up(explain_funnel(DEFAULT, old_values, new_values, target))


metric_values_strategy = st.fixed_dictionaries(
    {key: st.floats(min_value=1.0, max_value=1e5) for key in DEFAULT.metrics}
    | {"opening:active_customers": st.floats(min_value=1.0, max_value=1e5), "days": st.just(30.0)}
)


@given(st.sampled_from(DEFAULT.order), metric_values_strategy, metric_values_strategy)
def test_every_kpi_split_adds_up(kpi: str, old: dict[str, float], new: dict[str, float]) -> None:
    result = explain(DEFAULT, kpi, old, new)
    if result is not None:
        points = math.fsum(c.points for c in result.contributions)
        if result.method is not Method.NONE:
            assert points == pytest.approx(result.total_pct, rel=1e-6, abs=1e-6)


@given(st.dictionaries(st.sampled_from(STEP_KEYS), st.floats(min_value=-100, max_value=300)))
def test_what_if_compounding_matches_the_numbers(changes: dict[str, float]) -> None:
    result = project(NEW, changes)
    assert result.sales_factor == pytest.approx(result.compounding, rel=1e-9, abs=1e-12)
    expected = math.prod(1 + changes.get(rate, 0.0) / 100 for rate, _ in FUNNEL)
    assert result.compounding == pytest.approx(expected)
