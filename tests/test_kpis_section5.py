"""kpi-catalogue.md section 5: every worked example, computed from entries in Python
(`roll_up`) and through SQL on each configured backend (`Store.period_data`)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from kpis.catalogue import DEFAULT, ORGANIC_SOURCES, organic_sources
from kpis.periods import Period
from kpis.rollup import Entry, PeriodData, formula_scope, kpi_values, metric_values, roll_up
from storage import Store
from storage.records import Write

NOVEMBER = Period.month(date(2026, 11, 1))


def sums(**values: float) -> dict[str, tuple[float, int]]:
    return {k: (v, 1) for k, v in values.items()}


@pytest.mark.parametrize(
    ("logged", "expected"),
    [
        # seed 003's "utilidad real"
        (dict(revenue=10_000, cogs=2_000, fixed_costs=3_000, variable_costs=1_000, payroll=1_500,
              spend=500),
         {"total_costs": 8_000, "net_profit": 2_000, "profit_margin": 0.20}),
        # expenses, when logged, is the total
        (dict(revenue=10_000, expenses=7_000, cogs=2_000),
         {"total_costs": 7_000, "net_profit": 3_000, "profit_margin": 0.30}),
        # a single part is enough for a total
        (dict(revenue=1_000, spend=400), {"total_costs": 400, "net_profit": 600}),
        # break-even counts cost of goods as variable: 3,000 / ((10,000 - 3,000) / 10,000)
        (dict(revenue=10_000, fixed_costs=3_000, variable_costs=1_000, cogs=2_000),
         {"break_even_revenue": 3_000 / 0.7}),
    ],
)
def test_costs_in_parts(logged: dict[str, float], expected: dict[str, float]) -> None:
    values = kpi_values(DEFAULT, PeriodData(NOVEMBER, totals=sums(**logged)))
    for key, value in expected.items():
        assert values[key] == pytest.approx(value), key


def test_net_profit_needs_revenue_and_some_cost() -> None:
    assert "net_profit" not in kpi_values(DEFAULT, PeriodData(NOVEMBER, totals=sums(revenue=10)))


@pytest.mark.parametrize(
    ("entries", "churn"),
    [
        # seed 003: 200 at the end of October, 190 at the end of November, no new customers
        ([Entry("active_customers", date(2026, 10, 31), 200),
          Entry("active_customers", date(2026, 11, 30), 190)], 0.05),
        # with 15 new customers, 25 were lost
        ([Entry("active_customers", date(2026, 10, 31), 200),
          Entry("new_customers", date(2026, 11, 10), 15),
          Entry("active_customers", date(2026, 11, 30), 190)], 0.125),
        # customers_lost, when logged, wins over the derivation
        ([Entry("active_customers", date(2026, 10, 31), 200),
          Entry("customers_lost", date(2026, 11, 10), 4),
          Entry("active_customers", date(2026, 11, 30), 190)], 0.02),
    ],
)
def test_churn_from_counts(entries: list[Entry], churn: float) -> None:
    data = roll_up(entries, NOVEMBER, DEFAULT)
    values = kpi_values(DEFAULT, data)
    assert values["churn_rate"] == pytest.approx(churn)
    assert values["retention_rate"] == pytest.approx(1 - churn)


def test_no_churn_without_an_opening_count() -> None:
    data = roll_up([Entry("active_customers", date(2026, 11, 30), 190)], NOVEMBER, DEFAULT)
    assert "churn_rate" not in kpi_values(DEFAULT, data)


# -- paid and organic sources ----------------------------------------------------------------

FB = (("source", "facebook"),)
SEO = (("source", "seo"),)
D = date(2026, 11, 10)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        # seed 003's pair on one data set
        ([Entry("spend", D, 10_000), Entry("organic_spend", D, 5_000),
          Entry("new_customers", D, 200, dims=FB), Entry("new_customers", D, 300, dims=SEO)],
         {"cac": 50.0, "blended_cac": 30.0}),
        # with no source tags at all, cac stays spend / new customers
        ([Entry("spend", D, 10_000), Entry("organic_spend", D, 5_000),
          Entry("new_customers", D, 500)], {"cac": 20.0, "blended_cac": 30.0}),
        # untagged new customers count as paid
        ([Entry("spend", D, 9_000), Entry("new_customers", D, 100),
          Entry("new_customers", D, 50, dims=FB), Entry("new_customers", D, 350, dims=SEO)],
         {"cac": 60.0}),
        # an organic lead does not make the ads look cheaper
        ([Entry("spend", D, 1_000), Entry("leads", D, 40, dims=FB), Entry("leads", D, 60, dims=SEO)],
         {"cpl": 10.0, "paid_cpl": 25.0}),
        # only organic customers: no paid customer to divide by
        ([Entry("spend", D, 1_000), Entry("new_customers", D, 10, dims=SEO)], {"cac": None}),
        # a value in neither list counts as paid
        ([Entry("spend", D, 1_000), Entry("leads", D, 10, dims=(("source", "webinar_ads"),)),
          Entry("leads", D, 10, dims=(("source", "email"),))], {"paid_cpl": 100.0}),
    ],
)
def test_paid_and_organic_sources(entries: list[Entry], expected: dict[str, float | None]) -> None:
    values = kpi_values(DEFAULT, roll_up(entries, NOVEMBER, DEFAULT))
    for key, value in expected.items():
        assert values[key] == (None if value is None else pytest.approx(value)), key


def test_a_workspace_classifies_its_own_sources() -> None:
    assert "webinar" not in ORGANIC_SOURCES
    organic = organic_sources({"webinar": False, "email": True})
    assert "webinar" in organic and "email" not in organic and "seo" in organic
    entries = [Entry("spend", D, 1_000), Entry("leads", D, 10, dims=(("source", "webinar"),)),
               Entry("leads", D, 40, dims=(("source", "email"),))]
    assert kpi_values(DEFAULT, roll_up(entries, NOVEMBER, DEFAULT, organic))["paid_cpl"] == 25.0


# -- stocks across dimension values, LTV without a subscription, weighted means -----------------


def test_a_teams_pipeline_is_the_sum_of_its_reps_pipelines() -> None:
    entries = [
        Entry("pipeline_value", date(2026, 11, 3), 10_000, "ana", (("rep", "U1"),), written=1),
        Entry("pipeline_value", date(2026, 11, 20), 4_000, "bob", (("rep", "U2"),), written=2),
        # ana's later update replaces her own earlier pipeline, not bob's
        Entry("pipeline_value", date(2026, 11, 25), 12_000, "ana", (("rep", "U1"),), written=3),
    ]
    data = roll_up(entries, NOVEMBER, DEFAULT)
    assert data.closing["pipeline_value"] == 16_000


def test_ltv_from_revenue_per_new_customer_when_churn_is_unknown() -> None:
    year = Period(date(2025, 12, 1), date(2026, 11, 30))
    entries = [Entry("revenue", date(2026, 1, 15), 12_000), Entry("revenue", date(2026, 11, 10), 18_000),
               Entry("new_customers", date(2026, 3, 1), 8), Entry("new_customers", date(2026, 11, 2), 12),
               Entry("spend", date(2026, 6, 1), 10_000),
               Entry("revenue", date(2025, 11, 30), 99_999)]  # 366 days back: outside the year
    data = roll_up(entries, year, DEFAULT)
    values = kpi_values(DEFAULT, data)
    assert values["ltv"] == pytest.approx(1_500)
    assert values["cac"] == pytest.approx(500)
    assert values["ltv_cac"] == pytest.approx(3.0)
    scope = {**formula_scope(DEFAULT, data), **values}
    assert DEFAULT.method("ltv", scope) == "revenue per new customer over the last 365 days"


def test_ltv_from_churn_when_churn_is_known() -> None:
    entries = [Entry("active_customers", date(2026, 10, 31), 100),
               Entry("active_customers", date(2026, 11, 30), 100),
               Entry("customers_lost", date(2026, 11, 5), 5), Entry("revenue", D, 10_000),
               Entry("new_customers", D, 5)]
    data = roll_up(entries, NOVEMBER, DEFAULT)
    values = kpi_values(DEFAULT, data)
    assert values["ltv"] == pytest.approx(100 / 0.05)  # arpu 100 over 5% churn
    scope = {**formula_scope(DEFAULT, data), **values}
    assert DEFAULT.method("ltv", scope) == "revenue per active customer / churn rate"


def test_days_to_close_is_weighted_by_the_deals_logged_with_it() -> None:
    entries = [
        Entry("days_to_close", D, 20, "ana"), Entry("sales", D, 3, "ana"),
        Entry("days_to_close", D, 60, "bob"), Entry("sales", D, 1, "bob"),
        Entry("days_to_close", D + timedelta(days=1), 30, "eve"),  # no count: weighs 1
    ]
    values = metric_values(DEFAULT, roll_up(entries, NOVEMBER, DEFAULT))
    assert values["days_to_close"] == pytest.approx((20 * 3 + 60 + 30) / 5)


# -- the same through SQL ---------------------------------------------------------------------


def _log(store: Store, workspace: str, entries: list[Entry]) -> None:
    for entry in entries:
        store.record(workspace, [Write(entry.metric, entry.day, entry.value, entry.author or "ana",
                                       entry.dims)], actor=entry.author or "ana", origin="test")


def test_section_5_through_sql(any_store: Store) -> None:
    any_store.ensure_workspace("S5")
    _log(any_store, "S5", [
        Entry("spend", D, 10_000), Entry("organic_spend", D, 5_000),
        Entry("new_customers", D, 200, dims=FB), Entry("new_customers", D, 300, dims=SEO),
        Entry("leads", D, 40, dims=FB), Entry("leads", D, 60, dims=SEO),
        Entry("pipeline_value", date(2026, 11, 3), 10_000, "ana", (("rep", "U1"),)),
        Entry("pipeline_value", date(2026, 11, 20), 4_000, "bob", (("rep", "U2"),)),
        Entry("days_to_close", D, 20, "ana"), Entry("sales", D, 3, "ana"),
        Entry("days_to_close", D, 60, "bob"), Entry("sales", D, 1, "bob"),
    ])
    data = any_store.period_data("S5", NOVEMBER, DEFAULT)
    values = {**metric_values(DEFAULT, data), **kpi_values(DEFAULT, data)}
    assert values["cac"] == pytest.approx(50.0)
    assert values["blended_cac"] == pytest.approx(30.0)
    assert values["paid_cpl"] == pytest.approx(250.0)
    assert values["pipeline_value"] == pytest.approx(14_000)
    assert values["days_to_close"] == pytest.approx(30.0)
    # a source classified organic no longer counts for paid CAC
    assert any_store.classify_source("S5", "facebook", paid=False, actor="admin") is None
    data = any_store.period_data("S5", NOVEMBER, DEFAULT)
    assert kpi_values(DEFAULT, data)["cac"] is None
    assert any_store.source_classes("S5") == {"facebook": False}
    # the weight logged after the mean still weighs it, and an undo takes it back
    _log(any_store, "S5", [Entry("days_to_close", D, 10, "eve")])
    _log(any_store, "S5", [Entry("sales", D, 4, "eve")])
    data = any_store.period_data("S5", NOVEMBER, DEFAULT)
    assert metric_values(DEFAULT, data)["days_to_close"] == pytest.approx((60 + 60 + 40) / 8)
    any_store.undo_last("S5", "eve")
    data = any_store.period_data("S5", NOVEMBER, DEFAULT)
    assert metric_values(DEFAULT, data)["days_to_close"] == pytest.approx((60 + 60 + 10) / 5)
    # the same through the filtered path
    data = any_store.period_data("S5", NOVEMBER, DEFAULT, (("rep", "U2"),))
    assert metric_values(DEFAULT, data)["pipeline_value"] == 4_000


def test_ltv_through_sql(any_store: Store) -> None:
    any_store.ensure_workspace("S6")
    _log(any_store, "S6", [
        Entry("revenue", date(2026, 1, 15), 12_000), Entry("revenue", date(2026, 11, 10), 18_000),
        Entry("new_customers", date(2026, 3, 1), 8), Entry("new_customers", date(2026, 11, 2), 12),
        Entry("spend", date(2026, 11, 1), 6_000), Entry("revenue", date(2025, 11, 30), 99_999),
    ])
    values = kpi_values(DEFAULT, any_store.period_data("S6", NOVEMBER, DEFAULT))
    assert values["ltv"] == pytest.approx(1_500)
    assert values["cac"] == pytest.approx(500)  # 6,000 over November's 12 new customers
    assert values["ltv_cac"] == pytest.approx(3.0)
