"""kpi-catalogue.md section 5: the worked examples of costs in parts and churn from counts."""

from __future__ import annotations

from datetime import date

import pytest

from kpis.catalogue import DEFAULT
from kpis.periods import Period
from kpis.rollup import Entry, PeriodData, kpi_values, roll_up

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
    data = roll_up(entries, NOVEMBER, gauges=["active_customers"])
    values = kpi_values(DEFAULT, data)
    assert values["churn_rate"] == pytest.approx(churn)
    assert values["retention_rate"] == pytest.approx(1 - churn)


def test_no_churn_without_an_opening_count() -> None:
    data = roll_up([Entry("active_customers", date(2026, 11, 30), 190)], NOVEMBER,
                   gauges=["active_customers"])
    assert "churn_rate" not in kpi_values(DEFAULT, data)
