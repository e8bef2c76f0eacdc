"""The KPI engine as the catalogue spec describes it: pure computation, no database.

Every worked example of kpi-catalogue.md section 3 is a case here, computed the way the
product computes it: entries rolled up into a period (`roll_up`), then `kpi_values`.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpis.catalogue import (
    BUILTIN_NAMES,
    DEFAULT,
    DIMENSIONS,
    KPIS,
    METRICS,
    PACKS,
    Aggregation,
    Better,
    Catalogue,
    FormulaError,
    Unit,
    custom_kpi,
    custom_metric,
)
from kpis.compare import Verdict, change_pct, compare
from kpis.formula import PARTIAL_FUNCTIONS, Binary, Name, Number, Reading, Unary, parse
from kpis.periods import (
    NAMED_RANGES,
    Period,
    PeriodError,
    local_date,
    parse_date,
    resolve,
    resolve_day,
    zone,
)
from kpis.rollup import Entry, PeriodData, bucket_data, kpi_values, metric_values, roll_up

TUESDAY = date(2026, 3, 10)
WEEK = Period.iso_week(TUESDAY)  # 2026-03-09 .. 2026-03-15
MARCH = Period.month(TUESDAY)


def compute(
    entries: list[Entry], period: Period, catalogue: Catalogue = DEFAULT
) -> dict[str, float | None]:
    """Metric values and KPI values of `period`, the way a report computes them."""
    data = roll_up(entries, period, catalogue)
    return {**metric_values(catalogue, data), **kpi_values(catalogue, data)}


def same_day(values: dict[str, float], day: date = TUESDAY) -> list[Entry]:
    return [Entry(metric, day, value, "ana") for metric, value in values.items()]


# -- section 3: the worked examples ----------------------------------------------------------

ONE_DAY_EXAMPLES = [
    pytest.param({"spend": 1000, "leads": 100}, {"cpl": 10.00}, id="cost per lead"),
    pytest.param(
        {"spend": 960, "new_customers": 24, "revenue": 3600, "cash_collected": 3600},
        {"cac": 40, "ad_profit": 2640, "roas": 3.75},
        id="profit after ads",
    ),
    pytest.param({"spend": 10_000, "new_customers": 200}, {"cac": 50.00}, id="paid CAC"),
    pytest.param(
        {"spend": 10_000, "organic_spend": 5000, "new_customers": 500},
        {"blended_cac": 30.00},
        id="blended CAC",
    ),
    pytest.param({"spend": 1000, "new_customers": 500}, {"cac": 2.00}, id="CAC"),
    pytest.param(
        {"revenue": 10_000, "cash_collected": 7500},
        {"cash_collected_rate": 0.75},
        id="cash up front",
    ),
    pytest.param(
        {"revenue": 10_000, "expenses": 7000},
        {"net_profit": 3000, "profit_margin": 0.30},
        id="margin",
    ),
]


@pytest.mark.parametrize(("inputs", "expected"), ONE_DAY_EXAMPLES)
def test_worked_example_on_one_day(inputs: dict[str, float], expected: dict[str, float]) -> None:
    values = compute(same_day(inputs), Period.day(TUESDAY))
    for key, value in expected.items():
        assert values[key] == pytest.approx(value), key


@pytest.mark.parametrize(("inputs", "expected"), ONE_DAY_EXAMPLES)
def test_worked_example_holds_over_a_week(
    inputs: dict[str, float], expected: dict[str, float]
) -> None:
    """The same numbers logged on one day of a week give the same weekly KPIs."""
    values = compute(same_day(inputs), WEEK)
    for key, value in expected.items():
        assert values[key] == pytest.approx(value), key


def test_weekly_mrr_is_the_last_value_not_a_sum() -> None:
    # 100 members paying 50 a month, logged as mrr 5,000 on several days of the week
    entries = [Entry("mrr", WEEK.start + timedelta(days=i), 5000, "ops") for i in (0, 2, 4, 5)]
    values = compute(entries, WEEK)
    assert values["mrr"] == 5000


def test_weekly_gauge_takes_the_latest_day_even_when_written_earlier() -> None:
    entries = [
        Entry("mrr", WEEK.start + timedelta(days=4), 5200, "ops", written=1),
        Entry("mrr", WEEK.start, 5000, "ops", written=2),
    ]
    assert compute(entries, WEEK)["mrr"] == 5200


def test_gauge_most_recent_write_of_the_day_wins_whoever_wrote_it() -> None:
    entries = [
        Entry("cash_balance", TUESDAY, 900, "ana", written=2),
        Entry("cash_balance", TUESDAY, 100, "luis", written=1),
    ]
    assert compute(entries, WEEK)["cash_balance"] == 900


def test_churn_uses_active_customers_logged_the_day_before_the_month() -> None:
    entries = [
        Entry("active_customers", MARCH.start - timedelta(days=1), 200, "ops"),
        Entry("customers_lost", date(2026, 3, 5), 6, "ops"),
        Entry("customers_lost", date(2026, 3, 20), 4, "ops"),
        # logged inside the month: must not replace the opening value
        Entry("active_customers", date(2026, 3, 25), 190, "ops"),
    ]
    values = compute(entries, MARCH)
    assert values["churn_rate"] == pytest.approx(0.05)
    assert values["retention_rate"] == pytest.approx(0.95)
    assert values["active_customers"] == 190  # closing value of the month


def test_churn_needs_an_opening_value() -> None:
    entries = [
        Entry("active_customers", MARCH.start, 200, "ops"),  # logged on the first day: too late
        Entry("customers_lost", date(2026, 3, 5), 10, "ops"),
    ]
    values = compute(entries, MARCH)
    assert "churn_rate" not in values
    assert "retention_rate" not in values


def big_mac_catalogue() -> Catalogue:
    return Catalogue.build(
        [
            custom_metric("local_price", unit="currency", aggregation="last"),
            custom_metric("us_price", unit="currency", aggregation="last"),
            custom_metric("official_rate", unit="ratio", aggregation="last"),
        ],
        [
            custom_kpi("implied_rate", "local_price / us_price"),
            custom_kpi(
                "valuation_gap", "(official_rate - implied_rate) / official_rate", unit="percent"
            ),
        ],
    )


def test_big_mac_index_as_custom_metrics_and_kpis() -> None:
    catalogue = big_mac_catalogue()
    entries = same_day({"local_price": 4, "us_price": 5, "official_rate": 0.91})
    values = compute(entries, WEEK, catalogue)
    assert values["implied_rate"] == pytest.approx(0.80)
    assert values["valuation_gap"] == pytest.approx(0.1209, abs=5e-5)
    assert catalogue.kpis["valuation_gap"].custom
    assert catalogue.order.index("implied_rate") < catalogue.order.index("valuation_gap")


def test_custom_kpi_with_an_unknown_name_is_refused_with_a_suggestion() -> None:
    with pytest.raises(FormulaError, match="unknown name `us_prise`.*did you mean `us_price`"):
        Catalogue.build(
            [
                custom_metric("local_price", unit="currency"),
                custom_metric("us_price", unit="currency"),
            ],
            [custom_kpi("implied", "local_price / us_prise")],
        )


def test_custom_kpis_in_a_cycle_are_refused() -> None:
    with pytest.raises(FormulaError, match="circular"):
        Catalogue.build((), [custom_kpi("a", "b + 1"), custom_kpi("b", "a * 2")])


def test_ltv_below_cac_gives_a_ratio_below_one() -> None:
    entries = [
        Entry("active_customers", MARCH.start - timedelta(days=1), 100, "ops"),
        Entry("active_customers", date(2026, 3, 31), 100, "ops"),
        Entry("customers_lost", date(2026, 3, 10), 10, "ops"),  # churn 10%
        Entry("revenue", date(2026, 3, 10), 1000, "ops"),  # arpu 10, so ltv 100
        Entry("spend", date(2026, 3, 10), 2000, "ops"),
        Entry("new_customers", date(2026, 3, 10), 10, "ops"),  # cac 200
    ]
    values = compute(entries, MARCH)
    assert values["arpu"] == pytest.approx(10)
    assert values["ltv"] == pytest.approx(100)
    assert values["cac"] == pytest.approx(200)
    ltv_cac = values["ltv_cac"]
    assert ltv_cac is not None and ltv_cac < 1
    assert ltv_cac == pytest.approx(0.5)
    kpi = DEFAULT.kpis["ltv_cac"]
    assert kpi.better is Better.HIGHER
    assert "loses money" in kpi.help
    # shown as a warning whatever the trend, and only below 1
    warning = kpi.warning(ltv_cac)
    assert warning is not None and "below 1" in warning and "loses money" in warning
    assert kpi.warning(1.0) is None and kpi.warning(3.2) is None and kpi.warning(None) is None
    assert all(k.warning(0.0) is None for k in KPIS if k.key != "ltv_cac")


def test_ratio_of_sums_not_mean_of_daily_ratios() -> None:
    day1, day2 = date(2026, 3, 9), date(2026, 3, 10)
    entries = [
        Entry("spend", day1, 100, "ana"),
        Entry("leads", day1, 1, "ana"),
        Entry("spend", day2, 100, "ana"),
        Entry("leads", day2, 99, "ana"),
    ]
    assert compute(entries, Period(day1, day2))["cpl"] == pytest.approx(2.00)
    # the daily values were 100 and 1.01: their mean (50.5) is not the answer
    assert compute(entries, Period.day(day1))["cpl"] == pytest.approx(100)


def test_empty_denominator_gives_a_present_kpi_with_no_value() -> None:
    values = compute(same_day({"spend": 50, "leads": 0}), WEEK)
    assert "cpl" in values
    assert values["cpl"] is None


def test_kpi_with_a_missing_input_is_absent_not_zero() -> None:
    values = compute(same_day({"spend": 50}), WEEK)
    assert "cpl" not in values
    assert "roas" not in values


def test_kpi_values_can_be_limited_to_some_keys() -> None:
    data = roll_up(same_day({"spend": 100, "leads": 4, "clicks": 10}), WEEK, DEFAULT)
    assert kpi_values(DEFAULT, data, ["cpl"]) == {"cpl": 25.0}


def test_mean_metrics_average_the_logged_values() -> None:
    entries = [
        Entry("employee_satisfaction", date(2026, 3, 9), 6, "ana"),
        Entry("employee_satisfaction", date(2026, 3, 9), 8, "luis"),
        Entry("employee_satisfaction", date(2026, 3, 11), 10, "ana"),
    ]
    assert compute(entries, WEEK)["employee_satisfaction"] == pytest.approx(8)


def test_runway_scales_the_periods_expenses_to_a_30_day_month() -> None:
    entries = [
        *(Entry("expenses", WEEK.start + timedelta(days=i), 100, "ops") for i in range(7)),
        Entry("cash_balance", WEEK.end, 6000, "ops"),
    ]
    # 700 over 7 days is 3,000 a month; 6,000 in the bank is two months
    assert compute(entries, WEEK)["runway_months"] == pytest.approx(2.0)


def test_nps_and_other_formulas_of_the_catalogue() -> None:
    values = compute(
        same_day(
            {
                "nps_promoters": 60,
                "nps_passives": 30,
                "nps_detractors": 10,
                "revenue": 1000,
                "variable_costs": 400,
                "fixed_costs": 300,
                "impressions": 20_000,
                "spend": 200,
                "reach": 10_000,
            }
        ),
        WEEK,
    )
    assert values["nps"] == pytest.approx(50)
    assert values["break_even_revenue"] == pytest.approx(500)
    assert values["cpm"] == pytest.approx(10)
    assert values["frequency"] == pytest.approx(2)
    assert values["marketing_roi"] == pytest.approx(4)


# -- the catalogue matches the spec, table by table -------------------------------------------

SPEC_METRICS = """
| spend | Ad spend (paid investment) | currency | sum | marketing |
| organic_spend | Organic acquisition cost (content, SEO, PR) | currency | sum | marketing |
| impressions | Impressions | count | sum | marketing |
| reach | Reach (unique people) | count | sum* | marketing |
| clicks | Link clicks | count | sum | marketing |
| page_views | Landing page views | count | sum | marketing |
| leads | Leads | count | sum | marketing |
| mqls | Marketing-qualified leads | count | sum | marketing |
| bookings | Calls booked | count | sum | sales |
| qualified_bookings | Qualified calls booked | count | sum | sales |
| shows | Calls attended (show-ups) | count | sum | sales |
| sqls | Sales-qualified leads (opportunities) | count | sum | sales |
| sales | Deals closed | count | sum | sales |
| new_customers | New customers | count | sum | sales |
| revenue | Revenue billed | currency | sum | sales |
| cash_collected | Cash collected | currency | sum | sales |
| pipeline_value | Open pipeline value (weighted) | currency | last | sales |
| days_to_close | Days from call to sale | days | mean | sales |
| active_customers | Active customers | count | last | service |
| customers_lost | Customers lost (churned) | count | sum | service |
| refund_requests | Refund requests | count | sum | service |
| refunds | Refunds paid | currency | sum | service |
| onboarding_days | Days from payment to start | days | mean | service |
| program_completion | Program content consumed | percent | mean | service |
| client_tasks_assigned | Client tasks assigned | count | sum | service |
| client_tasks_done | Client tasks completed | count | sum | service |
| clients_evaluated | Clients evaluated against their promised result | count | sum | service |
| client_successes | Clients who reached the promised result | count | sum | service |
| nps_promoters | NPS promoters (9-10) | count | sum | service |
| nps_passives | NPS passives (7-8) | count | sum | service |
| nps_detractors | NPS detractors (0-6) | count | sum | service |
| referrals | Referrals received | count | sum | service |
| upsells | Upsells / renewals sold | count | sum | service |
| mrr | Monthly recurring revenue | currency | last | finance |
| cogs | Cost of goods / delivery | currency | sum | finance |
| fixed_costs | Fixed costs | currency | sum | finance |
| variable_costs | Variable costs | currency | sum | finance |
| expenses | Total operating expenses | currency | sum | finance |
| payroll | Personnel cost | currency | sum | finance |
| cash_balance | Cash in bank | currency | last | finance |
| accounts_receivable | Accounts receivable (owed to us) | currency | last | finance |
| accounts_payable | Accounts payable (we owe) | currency | last | finance |
| team_tasks_due | Team tasks due | count | sum | team |
| team_tasks_on_time | Team tasks done on time | count | sum | team |
| budgeted_hours | Budgeted hours | hours | sum | team |
| actual_hours | Actual hours | hours | sum | team |
| employee_satisfaction | Employee satisfaction (1-10) | score | mean | team |
"""

SPEC_KPIS = """
| cpm | Cost per 1,000 impressions | spend / impressions * 1000 | currency | lower |
| frequency | Frequency | impressions / reach | ratio | neutral |
| ctr | Click-through rate | clicks / impressions | percent | higher |
| cpc | Cost per click | spend / clicks | currency | lower |
| view_rate | Landing page loads per click | page_views / clicks | percent | higher |
| landing_cvr | Landing conversion rate | leads / page_views | percent | higher |
| cpl | Cost per lead | spend / leads | currency | lower |
| mql_rate | Lead-to-MQL rate | mqls / leads | percent | higher |
| booking_rate | Lead-to-booking rate | bookings / leads | percent | higher |
| cost_per_booking | Cost per booked call | spend / bookings | currency | lower |
| qualified_booking_rate | Qualified share of bookings | qualified_bookings / bookings | percent | higher |
| show_rate | Show-up rate | shows / bookings | percent | higher |
| close_rate | Close rate (per attended call) | sales / shows | percent | higher |
| booking_to_sale | Booking-to-sale rate | sales / bookings | percent | higher |
| funnel_cvr | Funnel conversion (lead to sale) | sales / leads | percent | higher |
| sql_rate | Lead-to-SQL rate | sqls / leads | percent | higher |
| win_rate | Opportunity win rate | sales / sqls | percent | higher |
| cac | Paid customer acquisition cost | spend / new_customers | currency | lower |
| blended_cac | Blended CAC (paid + organic) | (spend + organic_spend) / new_customers | currency | lower |
| aov | Average order value | revenue / sales | currency | higher |
| earnings_per_lead | Revenue per lead | revenue / leads | currency | higher |
| earnings_per_booking | Revenue per booked call | revenue / bookings | currency | higher |
| roas | Return on ad spend | revenue / spend | ratio | higher |
| marketing_roi | Marketing ROI | (revenue - spend) / spend | percent | higher |
| ad_profit | Profit after ads (cash) | cash_collected - spend | currency | higher |
| cash_collected_rate | Cash collected up front | cash_collected / revenue | percent | higher |
| refund_rate | Refund request rate | refund_requests / sales | percent | lower |
| nps | Net Promoter Score | (nps_promoters - nps_detractors) / (nps_promoters + nps_passives + nps_detractors) * 100 | score | higher |
| churn_rate | Churn rate | customers_lost / (active_customers at period start) | percent | lower |
| retention_rate | Retention rate | 1 - churn_rate | percent | higher |
| arpu | Revenue per active customer | revenue / active_customers | currency | higher |
| ltv | Customer lifetime value | arpu / churn_rate (both over the same period) | currency | higher |
| ltv_cac | LTV to CAC ratio | ltv / cac | ratio | higher |
| referral_rate | Referrals per active customer | referrals / active_customers | percent | higher |
| upsell_rate | Upsells per active customer | upsells / active_customers | percent | higher |
| client_task_completion | Client task completion | client_tasks_done / client_tasks_assigned | percent | higher |
| success_rate | Client success rate | client_successes / clients_evaluated | percent | higher |
| gross_profit | Gross profit | revenue - cogs | currency | higher |
| gross_margin | Gross margin | (revenue - cogs) / revenue | percent | higher |
| net_profit | Net profit | revenue - expenses | currency | higher |
| profit_margin | Net profit margin | (revenue - expenses) / revenue | percent | higher |
| break_even_revenue | Break-even revenue | fixed_costs / ((revenue - variable_costs) / revenue) | currency | lower |
| marketing_to_revenue | Marketing-to-revenue ratio | spend / revenue | percent | lower |
| ler | Labor efficiency ratio | revenue / payroll | ratio | higher |
| runway_months | Cash runway (months) | cash_balance / monthly expenses | months | higher |
| on_time_rate | Team tasks on time | team_tasks_on_time / team_tasks_due | percent | higher |
| hours_efficiency | Budgeted vs actual hours | budgeted_hours / actual_hours | ratio | higher |
"""

#: formulas the spec states in words; the catalogue writes them with `opening()` and `days`
WORDED_FORMULAS = {
    "churn_rate": "customers_lost / opening(active_customers)",
    "ltv": "arpu / churn_rate",
    "runway_months": "cash_balance / (expenses / days * 30)",
}

#: kpi-catalogue.md section 5 (release 2): churn from counts, costs in parts, cogs as variable,
#: paid CAC from paid customers, LTV from revenue per new customer when churn is unknown
RELEASE_2_FORMULAS = {
    "cac": "spend / first(paid(new_customers), new_customers)",
    "paid_cpl": "spend / paid(leads)",
    "ltv": "first(arpu / churn_rate, year(revenue) / year(new_customers))",
    "churn_rate": "first(customers_lost, sum(opening(active_customers), new_customers)"
                  " - active_customers) / opening(active_customers)",
    "net_profit": "revenue - total_costs",
    "profit_margin": "net_profit / revenue",
    "break_even_revenue": "fixed_costs / ((revenue - sum(variable_costs, cogs)) / revenue)",
    "runway_months": "cash_balance / (total_costs / days * 30)",
}
#: KPIs section 5 adds, after the KPI they are placed behind
RELEASE_2_KPIS = {"total_costs": "gross_margin", "paid_cpl": "cpl"}


def table(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.strip().splitlines()
    ]


METRIC_ROWS = table(SPEC_METRICS)
KPI_ROWS = table(SPEC_KPIS)


def test_the_catalogue_has_exactly_the_47_metrics_and_47_kpis_of_the_spec() -> None:
    assert len(METRIC_ROWS) == 47 and len(KPI_ROWS) == 47
    assert [m.key for m in METRICS] == [row[0] for row in METRIC_ROWS]
    keys = [row[0] for row in KPI_ROWS]
    for added, after in RELEASE_2_KPIS.items():
        keys.insert(keys.index(after) + 1, added)
    assert [k.key for k in KPIS] == keys
    assert set(DEFAULT.metrics) == {row[0] for row in METRIC_ROWS}
    assert set(DEFAULT.kpis) == set(keys)
    assert not set(DEFAULT.metrics) & set(DEFAULT.kpis)
    assert sorted(DEFAULT.order) == sorted(DEFAULT.kpis)


@pytest.mark.parametrize(("key", "label", "unit", "agg", "pack"), METRIC_ROWS, ids=lambda v: str(v))
def test_metric_definition_matches_the_spec(
    key: str, label: str, unit: str, agg: str, pack: str
) -> None:
    metric = DEFAULT.metrics[key]
    assert metric.label == label
    assert metric.unit is Unit(unit)
    assert metric.aggregation is Aggregation(agg.rstrip("*"))
    assert metric.pack == pack and pack in PACKS
    assert metric.help.strip()


def test_reach_help_says_that_summing_days_over_counts() -> None:
    assert "twice" in DEFAULT.metrics["reach"].help


@pytest.mark.parametrize(
    ("key", "label", "formula", "unit", "better"), KPI_ROWS, ids=lambda v: str(v)
)
def test_kpi_definition_matches_the_spec(
    key: str, label: str, formula: str, unit: str, better: str
) -> None:
    kpi = DEFAULT.kpis[key]
    assert kpi.label == label
    assert kpi.unit is Unit(unit)
    assert kpi.better is Better(better)
    assert kpi.pack in PACKS
    assert kpi.help.strip()
    spec = RELEASE_2_FORMULAS.get(key) or WORDED_FORMULAS.get(key, formula)
    assert kpi.formula.expr == parse(spec).expr


def test_inputs_of_follow_kpis_through_other_kpis() -> None:
    assert DEFAULT.inputs_of("cpl") == {"spend", "leads"}
    assert DEFAULT.inputs_of("retention_rate") == {
        "customers_lost", "opening:active_customers", "active_customers", "new_customers"}
    assert DEFAULT.inputs_of("ltv_cac") == {
        "revenue",
        "active_customers",
        "customers_lost",
        "opening:active_customers",
        "spend",
        "new_customers",
        "paid:new_customers",
        "year:revenue",
        "year:new_customers",
    }
    assert DEFAULT.metrics_of("cac") == {"spend", "new_customers"}
    assert "churn_rate" in DEFAULT.kpis_using(["active_customers"])
    assert DEFAULT.kpis_using(["leads"])[:2] == ["landing_cvr", "cpl"]


def test_dimensions_are_the_four_built_in_ones() -> None:
    assert DIMENSIONS == ("source", "rep", "campaign", "product")


@pytest.mark.parametrize(
    ("metric", "value", "problem"),
    [
        ("leads", -3, "cannot be negative"),
        ("leads", 2.5, "whole number"),
        ("employee_satisfaction", 11, "at most 10"),
        ("employee_satisfaction", 0, "at least 1"),
        ("program_completion", 1.2, "is a percent: at most 100% (got 120%)"),
    ],
)
def test_metric_check_refuses_impossible_values(metric: str, value: float, problem: str) -> None:
    message = DEFAULT.metrics[metric].check(value)
    assert message is not None and problem in message


@pytest.mark.parametrize(
    ("metric", "value"), [("leads", 0), ("spend", 12.5), ("cash_balance", -500), ("mrr", 0)]
)
def test_metric_check_accepts_possible_values(metric: str, value: float) -> None:
    assert DEFAULT.metrics[metric].check(value) is None


# -- periods ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "monday", "sunday"),
    [
        (date(2026, 3, 9), date(2026, 3, 9), date(2026, 3, 15)),  # a Monday
        (date(2026, 3, 12), date(2026, 3, 9), date(2026, 3, 15)),
        (date(2026, 3, 15), date(2026, 3, 9), date(2026, 3, 15)),  # a Sunday ends the week
        (date(2026, 1, 1), date(2025, 12, 29), date(2026, 1, 4)),  # across the new year
    ],
)
def test_iso_week_starts_on_monday(day: date, monday: date, sunday: date) -> None:
    week = Period.iso_week(day)
    assert (week.start, week.end) == (monday, sunday)
    assert week.start.weekday() == 0 and week.days == 7


@pytest.mark.parametrize(
    ("day", "first", "last"),
    [
        (date(2026, 2, 14), date(2026, 2, 1), date(2026, 2, 28)),
        (date(2024, 2, 29), date(2024, 2, 1), date(2024, 2, 29)),
        (date(2026, 12, 31), date(2026, 12, 1), date(2026, 12, 31)),
        (date(2026, 4, 1), date(2026, 4, 1), date(2026, 4, 30)),
    ],
)
def test_month(day: date, first: date, last: date) -> None:
    assert Period.month(day) == Period(first, last)
    assert Period.month(day).is_calendar_month


@pytest.mark.parametrize(
    ("month_day", "previous"),
    [
        (date(2026, 3, 1), Period(date(2026, 2, 1), date(2026, 2, 28))),
        (date(2024, 3, 1), Period(date(2024, 2, 1), date(2024, 2, 29))),
        (date(2026, 1, 1), Period(date(2025, 12, 1), date(2025, 12, 31))),
        (date(2026, 5, 1), Period(date(2026, 4, 1), date(2026, 4, 30))),
        (date(2026, 7, 1), Period(date(2026, 6, 1), date(2026, 6, 30))),
        (date(2026, 8, 1), Period(date(2026, 7, 1), date(2026, 7, 31))),
    ],
)
def test_previous_of_a_calendar_month_is_the_previous_calendar_month(
    month_day: date, previous: Period
) -> None:
    assert Period.month(month_day).previous() == previous


@pytest.mark.parametrize(
    ("period", "previous"),
    [
        (Period.rolling(7, date(2026, 3, 10)), Period(date(2026, 2, 25), date(2026, 3, 3))),
        (Period.rolling(30, date(2026, 3, 10)), Period(date(2026, 1, 10), date(2026, 2, 8))),
        (Period.day(date(2026, 3, 1)), Period.day(date(2026, 2, 28))),
        (WEEK, Period(date(2026, 3, 2), date(2026, 3, 8))),
        # not a whole calendar month: the same number of days just before
        (Period(date(2026, 3, 1), date(2026, 3, 30)), Period(date(2026, 1, 30), date(2026, 2, 28))),
    ],
)
def test_previous_of_other_periods_is_the_same_number_of_days_before(
    period: Period, previous: Period
) -> None:
    assert period.previous() == previous
    assert previous.days == period.days
    assert previous.end == period.start - timedelta(days=1)


WEDNESDAY = date(2026, 3, 11)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("today", Period.day(WEDNESDAY)),
        ("yesterday", Period.day(date(2026, 3, 10))),
        ("week", Period(date(2026, 3, 9), date(2026, 3, 15))),
        ("last-week", Period(date(2026, 3, 2), date(2026, 3, 8))),
        ("month", Period(date(2026, 3, 1), date(2026, 3, 31))),
        ("last-month", Period(date(2026, 2, 1), date(2026, 2, 28))),
        ("7d", Period(date(2026, 3, 5), WEDNESDAY)),
        ("30d", Period(date(2026, 2, 10), WEDNESDAY)),
        ("90d", Period(date(2025, 12, 12), WEDNESDAY)),
        (" Week ", Period(date(2026, 3, 9), date(2026, 3, 15))),
        ("2026-01-05..2026-01-11", Period(date(2026, 1, 5), date(2026, 1, 11))),
        ("2026-02-01..2026-02-28", Period(date(2026, 2, 1), date(2026, 2, 28))),
        ("2026-03-03..2026-03-03", Period.day(date(2026, 3, 3))),
    ],
)
def test_resolve(spec: str, expected: Period) -> None:
    assert resolve(spec, WEDNESDAY) == expected


def test_every_named_range_resolves() -> None:
    for name in NAMED_RANGES:
        period = resolve(name, WEDNESDAY)
        assert period.start <= WEDNESDAY or name in ("week", "month")
        if name.endswith("d"):
            assert period.days == int(name[:-1]) and period.end == WEDNESDAY


def test_resolve_uses_the_default_when_nothing_is_given() -> None:
    assert resolve(None, WEDNESDAY) == Period.iso_week(WEDNESDAY)
    assert resolve("", WEDNESDAY, default="month") == Period.month(WEDNESDAY)


def test_last_month_in_january_is_december() -> None:
    assert resolve("last-month", date(2026, 1, 15)) == Period(date(2025, 12, 1), date(2025, 12, 31))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("last-wek", "Did you mean `last-week`"),
        ("moth", "Did you mean `month`"),
        ("yesterdya", "Did you mean `yesterday`"),
        ("0d", "1d to 366d"),
        ("400d", "1d to 366d"),
        ("2026-03-10..2026-03-01", "before it starts"),
        ("2026-02-30..2026-03-01", "2026-02-30"),
        ("banana", "YYYY-MM-DD..YYYY-MM-DD"),
    ],
)
def test_resolve_refuses_with_a_useful_message(spec: str, message: str) -> None:
    with pytest.raises(PeriodError) as error:
        resolve(spec, WEDNESDAY)
    assert message in str(error.value)


def test_an_impossible_date_names_the_last_day_of_its_month() -> None:
    with pytest.raises(PeriodError) as error:
        parse_date("2026-02-30")
    assert "2026-02-30" in str(error.value)
    assert "2026-02-28" in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, WEDNESDAY),
        ("today", WEDNESDAY),
        ("Yesterday", date(2026, 3, 10)),
        ("2026-03-11", WEDNESDAY),
        ("2025-12-31", date(2025, 12, 31)),
    ],
)
def test_resolve_day(text: str | None, expected: date) -> None:
    assert resolve_day(text, WEDNESDAY) == expected


def test_resolve_day_refuses_the_future() -> None:
    with pytest.raises(PeriodError, match="in the future"):
        resolve_day("2026-03-12", WEDNESDAY)


@pytest.mark.parametrize(
    ("instant", "zone_name", "expected"),
    [
        (datetime(2026, 3, 8, 2, 30, tzinfo=UTC), "America/Bogota", date(2026, 3, 7)),
        (datetime(2026, 3, 8, 2, 30, tzinfo=UTC), "UTC", date(2026, 3, 8)),
        (datetime(2026, 3, 8, 2, 30, tzinfo=UTC), "Europe/Madrid", date(2026, 3, 8)),
        (datetime(2026, 3, 7, 20, 0, tzinfo=UTC), "Asia/Tokyo", date(2026, 3, 8)),
        (datetime(2026, 3, 7, 10, 0, tzinfo=UTC), "Pacific/Kiritimati", date(2026, 3, 8)),
        (datetime(2026, 3, 8, 10, 59, tzinfo=UTC), "Pacific/Pago_Pago", date(2026, 3, 7)),
    ],
)
def test_local_date_across_time_zones(instant: datetime, zone_name: str, expected: date) -> None:
    assert local_date(instant, zone_name) == expected


def test_a_naive_instant_is_utc_whatever_the_machine_time_zone() -> None:
    code = (
        "import os, time; os.environ['TZ'] = 'Asia/Tokyo'; time.tzset(); "
        "from datetime import datetime; from kpis.periods import local_date; "
        "print(local_date(datetime(2026, 3, 8, 2, 30), 'Europe/Madrid'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # 02:30 UTC is 03:30 in Madrid; read as Tokyo time it would be the evening before
    assert done.stdout.strip() == "2026-03-08", done.stderr


def test_an_unknown_time_zone_suggests_the_nearest_one() -> None:
    with pytest.raises(PeriodError, match="Did you mean `America/Bogota`"):
        zone("America/Bogata")
    with pytest.raises(PeriodError, match="IANA"):
        zone("Mars/Olympus")


def test_period_helpers() -> None:
    assert WEEK.days == 7 and len(WEEK.each_day()) == 7
    assert TUESDAY in WEEK and date(2026, 3, 16) not in WEEK
    assert str(WEEK) == "2026-03-09..2026-03-15"
    assert str(Period.day(TUESDAY)) == "2026-03-10"
    with pytest.raises(PeriodError):
        Period(date(2026, 3, 2), date(2026, 3, 1))


# -- comparisons ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "previous", "expected"),
    [
        (1200, 1000, 20.0),
        (10, 12.5, -20.0),
        (5, 5, 0.0),
        (-5, -10, 50.0),  # less negative is up
        (5, 0, None),
        (None, 5, None),
        (5, None, None),
    ],
)
def test_change_pct_is_a_percentage(
    value: float | None, previous: float | None, expected: float | None
) -> None:
    result = change_pct(value, previous)
    assert result == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("value", "previous", "better", "verdict"),
    [
        (12, 10, Better.HIGHER, Verdict.BETTER),
        (8, 10, Better.HIGHER, Verdict.WORSE),
        (8, 10, Better.LOWER, Verdict.BETTER),  # cpl went down: good
        (12, 10, Better.LOWER, Verdict.WORSE),  # cpl went up: bad
        (12, 10, Better.NEUTRAL, Verdict.SAME),
        (10, 10, Better.HIGHER, Verdict.SAME),
        (None, 10, Better.HIGHER, Verdict.UNKNOWN),
        (10, None, Better.LOWER, Verdict.UNKNOWN),
        (5, 0, Better.HIGHER, Verdict.BETTER),  # no percentage, still a direction
    ],
)
def test_compare_judges_by_the_better_direction(
    value: float | None, previous: float | None, better: Better, verdict: Verdict
) -> None:
    change = compare(value, previous, better)
    assert change.verdict is verdict
    assert (change.value, change.previous) == (value, previous)


def test_compare_carries_the_change_pct() -> None:
    change = compare(10.0, 12.5, DEFAULT.kpis["cpl"].better)
    assert change.change_pct == pytest.approx(-20.0)
    assert change.verdict is Verdict.BETTER


# -- purity -----------------------------------------------------------------------------------


def test_kpis_package_imports_no_database_and_no_slack() -> None:
    code = (
        "import kpis.catalogue, kpis.rollup, kpis.formula, kpis.periods, kpis.compare, "
        "kpis.numbers, sys; "
        "assert 'sqlalchemy' not in sys.modules and 'slack_bolt' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'slack')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# -- property: roll_up agrees with a naive computation ----------------------------------------

PROPERTY_METRICS = (
    "spend", "leads", "mrr", "active_customers", "days_to_close", "sales", "cash_balance",
    "pipeline_value",
)  # fmt: skip
PROPERTY_PERIOD = Period(date(2026, 3, 3), date(2026, 3, 9))

entry_rows = st.lists(
    st.tuples(
        st.sampled_from(PROPERTY_METRICS),
        st.integers(min_value=0, max_value=12).map(lambda n: date(2026, 2, 28) + timedelta(days=n)),
        st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
        st.sampled_from(("ana", "luis", "marta")),
        st.sampled_from(((), (("source", "facebook"),), (("source", "google"),), (("rep", "U1"),))),
    ),
    max_size=40,
)


def naive_metric_values(entries: list[Entry], period: Period) -> dict[str, float]:
    """What each metric is worth over `period`, written out the long way."""
    result: dict[str, float] = {}
    for key in PROPERTY_METRICS:
        metric = DEFAULT.metrics[key]
        if metric.aggregation is Aggregation.LAST:
            candidates = [e for e in entries if e.metric == key and e.day <= period.end]
            if candidates:  # a stock: each dimension value's latest, summed
                groups = {e.dims for e in candidates}
                result[key] = sum(
                    max((e for e in candidates if e.dims == g), key=lambda e: (e.day, e.written)).value
                    for g in groups
                )
            continue
        inside = [e for e in entries if e.metric == key and e.day in period]
        if not inside:
            continue
        if metric.aggregation is Aggregation.SUM:
            result[key] = sum(e.value for e in inside)
            continue
        weights = []
        for e in inside:  # the count logged in the same entry (the latest such write) weighs it
            same = [w for w in entries if (w.metric, w.day, w.author, w.dims)
                    == (metric.weight, e.day, e.author, e.dims)]
            weight = max(same, key=lambda w: w.written).value if same else 0.0
            weights.append(weight if weight > 0 else 1.0)
        result[key] = sum(e.value * w for e, w in zip(inside, weights, strict=True)) / sum(weights)
    return result


def naive_opening(entries: list[Entry], period: Period) -> dict[str, float]:
    by_group: dict[str, dict[tuple[tuple[str, str], ...], list[Entry]]] = defaultdict(lambda: defaultdict(list))
    for e in entries:
        if e.day < period.start:
            by_group[e.metric][e.dims].append(e)
    return {
        key: sum(max(found, key=lambda e: (e.day, e.written)).value for found in groups.values())
        for key, groups in by_group.items()
        if DEFAULT.metrics[key].aggregation is Aggregation.LAST
    }


@settings(max_examples=150, deadline=None)
@given(rows=entry_rows)
def test_roll_up_matches_a_naive_computation(
    rows: list[tuple[str, date, float, str, tuple[tuple[str, str], ...]]],
) -> None:
    entries = [
        Entry(metric, day, float(round(value)) if DEFAULT.metrics[metric].whole else value,
              author, dims, written=float(i))
        for i, (metric, day, value, author, dims) in enumerate(rows)
    ]
    data = roll_up(entries, PROPERTY_PERIOD, DEFAULT)
    got = metric_values(DEFAULT, data)
    expected = naive_metric_values(entries, PROPERTY_PERIOD)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key
    assert dict(data.opening) == naive_opening(entries, PROPERTY_PERIOD)
    # and a KPI over them is the ratio of the naive sums
    if "cpl" in (kpis := kpi_values(DEFAULT, data)):
        leads = expected["leads"]
        ratio = expected["spend"] / leads if leads else math.inf
        # an empty (or vanishing) denominator is "no value", never infinity
        assert kpis["cpl"] == (pytest.approx(ratio) if math.isfinite(ratio) else None)


def test_period_data_can_be_built_by_hand() -> None:
    data = PeriodData(WEEK, totals={"spend": (200.0, 2), "leads": (100.0, 2)})
    # total costs need only one of their parts: ad spend alone is a total cost
    assert kpi_values(DEFAULT, data) == {"cpl": 2.0, "total_costs": 200.0}


# -- labels in a second language ------------------------------------------------------------


@pytest.mark.parametrize(("locale", "cpl", "spend"), [
    ("es_CO", "Costo por lead", "Inversión en anuncios"),
    ("es-LA", "Costo por lead", "Inversión en anuncios"),
    ("es_419", "Costo por lead", "Inversión en anuncios"),
    ("en_US", "Cost per lead", "Ad spend (paid investment)"),
    ("de_DE", "Cost per lead", "Ad spend (paid investment)"),  # no German labels: English
])
def test_labels_follow_the_workspace_language(locale: str, cpl: str, spend: str) -> None:
    catalogue = Catalogue.build().localized(locale)

    assert (catalogue.kpis["cpl"].label, catalogue.metrics["spend"].label) == (cpl, spend)
    assert catalogue.kpis["cpl"].formula == DEFAULT.kpis["cpl"].formula


def test_every_built_in_has_a_spanish_label_and_custom_ones_keep_theirs() -> None:
    from kpis.labels_es import LABELS_ES

    assert set(LABELS_ES) == set(DEFAULT.metrics) | set(DEFAULT.kpis)
    custom = Catalogue.build(kpis=[custom_kpi("cost_per_show", "spend / shows", label="Cost per show")])
    assert custom.localized("es_CO").kpis["cost_per_show"].label == "Cost per show"


def _needs_met(catalogue: Catalogue, expr: Any, available: set[str]) -> bool:
    """The rule of `Catalogue.computable`, walked over the formula as written."""
    if isinstance(expr, Number):
        return True
    if isinstance(expr, Name):
        if expr.name in catalogue.kpis:
            return _needs_met(catalogue, catalogue.kpis[expr.name].formula.expr, available)
        return expr.name in available if expr.name in catalogue.metrics else expr.name in BUILTIN_NAMES
    if isinstance(expr, Reading):
        return f"{expr.kind}:{expr.name}" in available
    if isinstance(expr, Unary):
        return _needs_met(catalogue, expr.operand, available)
    if isinstance(expr, Binary):
        return _needs_met(catalogue, expr.left, available) and _needs_met(catalogue, expr.right, available)
    met = [_needs_met(catalogue, arg, available) for arg in expr.args]
    return any(met) if expr.func in PARTIAL_FUNCTIONS else all(met)


#: readings some built-in KPI takes, beside the metrics
_SCOPE_KEYS = sorted({*DEFAULT.metrics, *(n for k in DEFAULT.kpis.values()
                                          for n in k.formula.names if ":" in n)})


@settings(max_examples=150, deadline=None)
@given(available=st.sets(st.sampled_from(_SCOPE_KEYS)),
       keys=st.sets(st.sampled_from(sorted(DEFAULT.kpis)), min_size=1))
def test_kpi_values_of_some_keys_are_those_of_all(available: set[str], keys: set[str]) -> None:
    """Evaluating only some KPIs (and what they use) gives exactly their values among all; a
    KPI is computable exactly when its formula, walked as written, has its inputs."""
    for key in DEFAULT.order:
        assert DEFAULT.computable(key, available) == _needs_met(
            DEFAULT, DEFAULT.kpis[key].formula.expr, available), key
    data = PeriodData(WEEK, totals={k: (3.0, 2) for k in available if k in DEFAULT.metrics},
                      closing={k: 5.0 for k in available if k in DEFAULT.metrics},
                      opening={k.partition(":")[2]: 4.0 for k in available if k.startswith("opening:")},
                      paid={k.partition(":")[2]: 1.0 for k in available if k.startswith("paid:")},
                      year={k.partition(":")[2]: 9.0 for k in available if k.startswith("year:")})
    every = kpi_values(DEFAULT, data)
    assert kpi_values(DEFAULT, data, keys) == {k: v for k, v in every.items() if k in keys}
    assert kpi_values(DEFAULT, data, iter(sorted(keys))) == {k: v for k, v in every.items() if k in keys}


def test_bucket_sums_are_the_days_added_in_order_whatever_order_they_came_in() -> None:
    start = date(2026, 3, 1)
    values = [0.1, 0.2, 0.3, 1e16, 1.0, -1e16, 0.7] * 3
    ordered = {start + timedelta(days=i): (v, 1, None) for i, v in enumerate(values)}
    shuffled = dict(sorted(ordered.items(), key=lambda item: (item[0].day * 7) % 11))
    buckets = [Period(start + timedelta(days=i), start + timedelta(days=i + 6)) for i in range(15)]
    buckets.append(Period(date(2026, 4, 1), date(2026, 4, 7)))  # no day in it

    def scanned(by_day: dict[date, tuple[float, int, None]], bucket: Period) -> float:
        total = 0.0
        for day, (value, _, _) in by_day.items():
            if bucket.start <= day <= bucket.end:
                total += value
        return total

    for by_day in (ordered, shuffled):
        found = bucket_data({"leads": by_day}, buckets, ())
        assert [d.totals.get("leads") for d in found] == [
            (scanned(by_day, b), 7) for b in buckets[:-1]] + [None]
