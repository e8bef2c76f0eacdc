"""The catalogue of metrics and KPIs, as data.

One definition per metric (what people log) and per KPI (a formula over metrics and other
KPIs). Everything else (forms, reports, digests, the CSV importer) reads these definitions
instead of knowing metric names itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import TypeAlias

from kpis.formula import (
    PARTIAL_FUNCTIONS,
    Binary,
    Call,
    Expr,
    Formula,
    FormulaError,
    Name,
    Number,
    Reading,
    Unary,
    check_names,
    dependency_order,
    evaluate_expr,
    parse,
    reading_of,
)


class Unit(StrEnum):
    CURRENCY = "currency"
    COUNT = "count"
    PERCENT = "percent"
    DAYS = "days"
    HOURS = "hours"
    SCORE = "score"
    RATIO = "ratio"
    MONTHS = "months"


class Aggregation(StrEnum):
    """How daily values roll up into a longer period."""

    SUM = "sum"
    LAST = "last"
    MEAN = "mean"


class Better(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"
    NEUTRAL = "neutral"


PACKS = ("marketing", "sales", "service", "finance", "team")
#: optional tags on an entry; `rep` holds a Slack user id, the others free text (case-folded)
DIMENSIONS = ("source", "rep", "campaign", "product")
#: where a workspace's own dimensions keep their values: one slot each, so at most this many
DIMENSION_SLOTS = ("dim1", "dim2", "dim3")
DEFAULT_PACKS = ("marketing", "sales")

#: how a `source` value counts for paid CAC and paid CPL until an admin says otherwise
#: (`/kpi source NAME paid|organic`); a value in neither list is paid
PAID_SOURCES = frozenset({
    "facebook", "meta", "instagram", "google", "google_ads", "adwords", "youtube_ads", "tiktok",
    "linkedin", "bing", "twitter", "x", "ads", "paid",
})
ORGANIC_SOURCES = frozenset({
    "seo", "organic", "referral", "referrals", "direct", "email", "content", "podcast", "youtube",
    "word_of_mouth", "partner",
})


def organic_sources(classified: Mapping[str, bool]) -> frozenset[str]:
    """The organic source values of a workspace: the defaults with its own classification
    (source -> paid) laid over them. Untagged entries and every other value count as paid."""
    organic = set(ORGANIC_SOURCES)
    for source, paid in classified.items():
        (organic.discard if paid else organic.add)(source)
    return frozenset(organic)


#: names every formula may use besides metrics and KPIs
BUILTIN_NAMES = frozenset({"days"})


@dataclass(frozen=True)
class Metric:
    """An input people log, once per day."""

    key: str
    label: str
    unit: Unit
    aggregation: Aggregation
    pack: str
    help: str = ""
    minimum: float | None = 0.0
    maximum: float | None = None
    whole: bool = False
    #: for a `mean`: the count logged in the same entry that weighs each value (days to close
    #: per deal: a rep's 3 deals at 20 days weigh three times one deal at 60)
    weight: str | None = None
    #: a salesperson's own number: logged in Slack without `rep=`, it is the logger's
    by_rep: bool = False

    def check(self, value: float) -> str | None:
        """Why `value` cannot be stored for this metric, or None when it can."""
        if self.minimum is not None and value < self.minimum:
            if self.minimum == 0:
                return f"{self.key} cannot be negative (got {value:g}); use 0 or more"
            return f"{self.key} must be at least {self.minimum:g} (got {value:g})"
        if self.maximum is not None and value > self.maximum:
            if self.unit is Unit.PERCENT:  # stored as a fraction, typed as a percent
                return (f"{self.key} is a percent: at most {self.maximum * 100:g}% "
                        f"(got {value * 100:g}%)")
            return f"{self.key} must be at most {self.maximum:g} (got {value:g})"
        if self.whole and value != int(value):
            return f"{self.key} is a count: use a whole number (got {value:g})"
        return None


@dataclass(frozen=True)
class Kpi:
    """A number computed from the period's aggregated inputs (a ratio of sums)."""

    key: str
    label: str
    formula: Formula
    unit: Unit
    better: Better
    pack: str
    help: str = ""
    custom: bool = False
    #: a value below this is a warning whatever the trend (ltv_cac < 1 loses money per customer)
    warn_below: float | None = None
    warn_reason: str = ""
    #: for a formula `first(a, b, ...)`: what each argument computes, said next to the value
    methods: tuple[str, ...] = ()

    def warning(self, value: float | None) -> str | None:
        """Why `value` deserves a warning on its own, or None."""
        if value is None or self.warn_below is None or value >= self.warn_below:
            return None
        reason = f": {self.warn_reason}" if self.warn_reason else ""
        return f"{self.label} is below {self.warn_below:g}{reason}"


def _m(
    key: str, label: str, unit: str, agg: str, pack: str, help: str = "", *,
    minimum: float | None = 0.0, maximum: float | None = None, weight: str | None = None,
) -> Metric:
    unit_ = Unit(unit)
    whole = unit_ is Unit.COUNT
    return Metric(key, label, unit_, Aggregation(agg), pack, help or label, minimum, maximum, whole,
                  weight, by_rep=pack == "sales")  # the sales pack's inputs are a rep's own


METRICS: tuple[Metric, ...] = (
    _m("spend", "Ad spend (paid investment)", "currency", "sum", "marketing"),
    _m("organic_spend", "Organic acquisition cost (content, SEO, PR)", "currency", "sum", "marketing"),
    _m("impressions", "Impressions", "count", "sum", "marketing"),
    _m("reach", "Reach (unique people)", "count", "sum", "marketing",
       "Unique people reached per day. Summed over a week or month, people seen on two days "
       "count twice, so weekly reach and frequency are estimates."),
    _m("clicks", "Link clicks", "count", "sum", "marketing"),
    _m("page_views", "Landing page views", "count", "sum", "marketing"),
    _m("leads", "Leads", "count", "sum", "marketing"),
    _m("mqls", "Marketing-qualified leads", "count", "sum", "marketing"),
    _m("bookings", "Calls booked", "count", "sum", "sales"),
    _m("qualified_bookings", "Qualified calls booked", "count", "sum", "sales"),
    _m("shows", "Calls attended (show-ups)", "count", "sum", "sales"),
    _m("sqls", "Sales-qualified leads (opportunities)", "count", "sum", "sales"),
    _m("sales", "Deals closed", "count", "sum", "sales"),
    _m("new_customers", "New customers", "count", "sum", "sales"),
    _m("revenue", "Revenue billed", "currency", "sum", "sales"),
    _m("cash_collected", "Cash collected", "currency", "sum", "sales"),
    _m("pipeline_value", "Open pipeline value (weighted)", "currency", "last", "sales"),
    _m("days_to_close", "Days from call to sale", "days", "mean", "sales",
       "Days from call to sale; logged with `sales`, it is weighed per deal.", weight="sales"),
    _m("active_customers", "Active customers", "count", "last", "service"),
    _m("customers_lost", "Customers lost (churned)", "count", "sum", "service"),
    _m("refund_requests", "Refund requests", "count", "sum", "service"),
    _m("refunds", "Refunds paid", "currency", "sum", "service"),
    _m("onboarding_days", "Days from payment to start", "days", "mean", "service",
       "Days from payment to start; logged with `new_customers`, it is weighed per customer.",
       weight="new_customers"),
    _m("program_completion", "Program content consumed", "percent", "mean", "service", maximum=1.0),
    _m("client_tasks_assigned", "Client tasks assigned", "count", "sum", "service"),
    _m("client_tasks_done", "Client tasks completed", "count", "sum", "service"),
    _m("clients_evaluated", "Clients evaluated against their promised result", "count", "sum", "service"),
    _m("client_successes", "Clients who reached the promised result", "count", "sum", "service"),
    _m("nps_promoters", "NPS promoters (9-10)", "count", "sum", "service"),
    _m("nps_passives", "NPS passives (7-8)", "count", "sum", "service"),
    _m("nps_detractors", "NPS detractors (0-6)", "count", "sum", "service"),
    _m("referrals", "Referrals received", "count", "sum", "service"),
    _m("upsells", "Upsells / renewals sold", "count", "sum", "service"),
    _m("mrr", "Monthly recurring revenue", "currency", "last", "finance"),
    _m("cogs", "Cost of goods / delivery", "currency", "sum", "finance"),
    _m("fixed_costs", "Fixed costs", "currency", "sum", "finance"),
    _m("variable_costs", "Variable costs", "currency", "sum", "finance"),
    _m("expenses", "Total operating expenses", "currency", "sum", "finance"),
    _m("payroll", "Personnel cost", "currency", "sum", "finance"),
    _m("cash_balance", "Cash in bank", "currency", "last", "finance", minimum=None),
    _m("accounts_receivable", "Accounts receivable (owed to us)", "currency", "last", "finance"),
    _m("accounts_payable", "Accounts payable (we owe)", "currency", "last", "finance"),
    _m("team_tasks_due", "Team tasks due", "count", "sum", "team"),
    _m("team_tasks_on_time", "Team tasks done on time", "count", "sum", "team"),
    _m("budgeted_hours", "Budgeted hours", "hours", "sum", "team"),
    _m("actual_hours", "Actual hours", "hours", "sum", "team"),
    _m("employee_satisfaction", "Employee satisfaction (1-10)", "score", "mean", "team", minimum=1.0, maximum=10.0),
)

#: what each argument of a KPI's `first(...)` computes, for the report to name its method
_METHODS: dict[str, tuple[str, ...]] = {
    "ltv": ("revenue per active customer / churn rate",
            "revenue per new customer over the last 365 days"),
    "churn_rate": ("customers lost", "derived from active customers and new customers"),
    "total_costs": ("total operating expenses", "sum of the cost parts logged"),
}

# (key, label, formula, unit, better, pack, help)
_KPI_ROWS: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    ("cpm", "Cost per 1,000 impressions", "spend / impressions * 1000", "currency", "lower", "marketing", ""),
    ("frequency", "Frequency", "impressions / reach", "ratio", "neutral", "marketing",
     "Impressions per person reached. Over more than a day reach is summed, so this is a lower bound."),
    ("ctr", "Click-through rate", "clicks / impressions", "percent", "higher", "marketing", ""),
    ("cpc", "Cost per click", "spend / clicks", "currency", "lower", "marketing", ""),
    ("view_rate", "Landing page loads per click", "page_views / clicks", "percent", "higher", "marketing", ""),
    ("landing_cvr", "Landing conversion rate", "leads / page_views", "percent", "higher", "marketing", ""),
    ("cpl", "Cost per lead", "spend / leads", "currency", "lower", "marketing",
     "Ad spend over all leads, paid and organic."),
    ("paid_cpl", "Cost per paid lead", "spend / paid(leads)", "currency", "lower", "marketing",
     "Ad spend over the leads from paid sources (and untagged ones): organic leads do not make "
     "the ads look cheaper. Shown once some leads carry a source."),
    ("mql_rate", "Lead-to-MQL rate", "mqls / leads", "percent", "higher", "marketing", ""),
    ("booking_rate", "Lead-to-booking rate", "bookings / leads", "percent", "higher", "sales", ""),
    ("cost_per_booking", "Cost per booked call", "spend / bookings", "currency", "lower", "sales", ""),
    ("qualified_booking_rate", "Qualified share of bookings", "qualified_bookings / bookings", "percent", "higher", "sales", ""),
    ("show_rate", "Show-up rate", "shows / bookings", "percent", "higher", "sales", ""),
    ("close_rate", "Close rate (per attended call)", "sales / shows", "percent", "higher", "sales", ""),
    ("booking_to_sale", "Booking-to-sale rate", "sales / bookings", "percent", "higher", "sales", ""),
    ("funnel_cvr", "Funnel conversion (lead to sale)", "sales / leads", "percent", "higher", "sales", ""),
    ("sql_rate", "Lead-to-SQL rate", "sqls / leads", "percent", "higher", "sales", ""),
    ("win_rate", "Opportunity win rate", "sales / sqls", "percent", "higher", "sales", ""),
    ("cac", "Paid customer acquisition cost", "spend / first(paid(new_customers), new_customers)",
     "currency", "lower", "sales", "Ad spend over the new customers from paid sources; untagged "
     "customers count as paid. `/kpi source NAME paid|organic` says how a source counts."),
    ("blended_cac", "Blended CAC (paid + organic)", "(spend + organic_spend) / new_customers", "currency", "lower", "sales", ""),
    ("aov", "Average order value", "revenue / sales", "currency", "higher", "sales", ""),
    ("earnings_per_lead", "Revenue per lead", "revenue / leads", "currency", "higher", "sales", ""),
    ("earnings_per_booking", "Revenue per booked call", "revenue / bookings", "currency", "higher", "sales", ""),
    ("roas", "Return on ad spend", "revenue / spend", "ratio", "higher", "sales", ""),
    ("marketing_roi", "Marketing ROI", "(revenue - spend) / spend", "percent", "higher", "sales", ""),
    ("ad_profit", "Profit after ads (cash)", "cash_collected - spend", "currency", "higher", "sales", ""),
    ("cash_collected_rate", "Cash collected up front", "cash_collected / revenue", "percent", "higher", "sales", ""),
    ("refund_rate", "Refund request rate", "refund_requests / sales", "percent", "lower", "service", ""),
    ("nps", "Net Promoter Score",
     "(nps_promoters - nps_detractors) / (nps_promoters + nps_passives + nps_detractors) * 100",
     "score", "higher", "service", ""),
    ("churn_rate", "Churn rate",
     "first(customers_lost, sum(opening(active_customers), new_customers) - active_customers)"
     " / opening(active_customers)", "percent", "lower", "service",
     "Customers lost over the active customers logged before the period started; without "
     "customers_lost, lost = opening active customers + new customers - closing."),
    ("retention_rate", "Retention rate", "1 - churn_rate", "percent", "higher", "service", ""),
    ("arpu", "Revenue per active customer", "revenue / active_customers", "currency", "higher", "service", ""),
    ("ltv", "Customer lifetime value",
     "first(arpu / churn_rate, year(revenue) / year(new_customers))", "currency", "higher", "service",
     "Revenue per active customer divided by the churn rate; without churn (one-off "
     "programmes), the revenue per new customer over the 365 days ending with the period."),
    ("ltv_cac", "LTV to CAC ratio", "ltv / cac", "ratio", "higher", "service",
     "Below 1 the business loses money on every customer it buys."),
    ("referral_rate", "Referrals per active customer", "referrals / active_customers", "percent", "higher", "service", ""),
    ("upsell_rate", "Upsells per active customer", "upsells / active_customers", "percent", "higher", "service", ""),
    ("client_task_completion", "Client task completion", "client_tasks_done / client_tasks_assigned", "percent", "higher", "service", ""),
    ("success_rate", "Client success rate", "client_successes / clients_evaluated", "percent", "higher", "service", ""),
    ("gross_profit", "Gross profit", "revenue - cogs", "currency", "higher", "finance", ""),
    ("gross_margin", "Gross margin", "(revenue - cogs) / revenue", "percent", "higher", "finance", ""),
    ("total_costs", "Total costs",
     "first(expenses, sum(cogs, fixed_costs, variable_costs, payroll, spend, organic_spend))",
     "currency", "lower", "finance",
     "Total operating expenses when logged, else the sum of the cost parts that are."),
    ("net_profit", "Net profit", "revenue - total_costs", "currency", "higher", "finance", ""),
    ("profit_margin", "Net profit margin", "net_profit / revenue", "percent", "higher", "finance", ""),
    ("break_even_revenue", "Break-even revenue",
     "fixed_costs / ((revenue - sum(variable_costs, cogs)) / revenue)", "currency", "lower", "finance",
     "Fixed costs over the contribution margin; cost of goods counts as a variable cost."),
    ("marketing_to_revenue", "Marketing-to-revenue ratio", "spend / revenue", "percent", "lower", "finance", ""),
    ("ler", "Labor efficiency ratio", "revenue / payroll", "ratio", "higher", "finance", ""),
    ("runway_months", "Cash runway (months)", "cash_balance / (total_costs / days * 30)", "months", "higher", "finance",
     "Cash in bank over the period's total costs scaled to a 30-day month."),
    ("on_time_rate", "Team tasks on time", "team_tasks_on_time / team_tasks_due", "percent", "higher", "team", ""),
    ("hours_efficiency", "Budgeted vs actual hours", "budgeted_hours / actual_hours", "ratio", "higher", "team", ""),
)

#: KPIs whose value below a line is a warning in every report, not only when it gets worse
_WARN_BELOW: dict[str, tuple[float, str]] = {
    "ltv_cac": (1.0, "the business loses money on every customer it buys"),
}

KPIS: tuple[Kpi, ...] = tuple(
    Kpi(key, label, parse(formula), Unit(unit), Better(better), pack, help or label,
        warn_below=_WARN_BELOW[key][0] if key in _WARN_BELOW else None,
        warn_reason=_WARN_BELOW[key][1] if key in _WARN_BELOW else "",
        methods=_METHODS.get(key, ()))
    for key, label, formula, unit, better, pack, help in _KPI_ROWS
)

#: the KPIs a digest and App Home lead with, in order
HEADLINE_KPIS = ("cpl", "booking_rate", "show_rate", "close_rate", "cac", "roas", "ad_profit", "aov")

#: what a formula needs (Catalogue._need_of): inputs, KPIs, groups of which one must be met
_Need: TypeAlias = tuple[frozenset[str], tuple[str, ...], tuple[tuple["_Need", ...], ...]]
_NOTHING: _Need = (frozenset(), (), ())
_NEVER: _Need = (frozenset(), (), ((),))


@dataclass(frozen=True)
class Dimension:
    """A workspace's own dimension (`temperature`): the entry column (a DIMENSION_SLOTS name)
    holding its values, and the values it allows (empty: free text)."""

    key: str
    slot: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalogue:
    """The metrics and KPIs one workspace knows: the built-ins plus its own definitions."""

    metrics: Mapping[str, Metric]
    kpis: Mapping[str, Kpi]
    order: tuple[str, ...] = field(default=())
    #: the workspace's own dimensions, in the order they were added
    dimensions: tuple[Dimension, ...] = field(default=())
    #: own dimensions removed whose slot still holds their tags: history and exports name
    #: those tags, and adding the dimension again brings them back (Store.add_dimension)
    removed: tuple[Dimension, ...] = field(default=())

    @classmethod
    def build(cls, metrics: Iterable[Metric] = (), kpis: Iterable[Kpi] = (),
              dimensions: Iterable[Dimension] = (),
              removed: Iterable[Dimension] = ()) -> Catalogue:
        """The built-in catalogue extended with custom metrics and KPIs, checked as a whole."""
        all_metrics = {m.key: m for m in (*METRICS, *metrics)}
        all_kpis = {k.key: k for k in (*KPIS, *kpis)}
        known = set(all_metrics) | set(all_kpis) | BUILTIN_NAMES
        for kpi in all_kpis.values():
            check_names(kpi.formula, known)
        order = dependency_order({k: v.formula for k, v in all_kpis.items()})
        live = tuple(dimensions)
        held = {d.slot for d in live}
        return cls(all_metrics, all_kpis, tuple(k for k in order if k in all_kpis), live,
                   tuple(d for d in removed if d.slot not in held))

    @cached_property
    def dimension_names(self) -> tuple[str, ...]:
        """Every dimension an entry can carry: the built-ins, then the workspace's own."""
        return (*DIMENSIONS, *(d.key for d in self.dimensions))

    def dimension(self, key: str) -> Dimension | None:
        return next((d for d in self.dimensions if d.key == key), None)

    def column_of(self, key: str) -> str:
        """The entry column holding a dimension's values (a built-in's is its own name)."""
        own = self.dimension(key)
        return own.slot if own else key

    def dimension_of(self, column: str) -> str:
        """The dimension an entry column holds (the inverse of column_of); a removed
        dimension's slot is named after it, so a tag never reads as `dim1=warm`."""
        return next((d.key for d in (*self.dimensions, *self.removed) if d.slot == column),
                    column)

    @cached_property
    def tag_names(self) -> tuple[str, ...]:
        """Every dimension an entry may carry a tag of: the dimension names, then those of
        removed dimensions whose tags are kept (export columns, history)."""
        return (*self.dimension_names, *(d.key for d in self.removed))

    @cached_property
    def names(self) -> frozenset[str]:
        return frozenset(self.metrics) | frozenset(self.kpis)

    # What the methods below work out once per catalogue: it never changes once built, and
    # the store hands out the same object for the same definitions.
    @cached_property
    def _inputs(self) -> dict[str, frozenset[str]]:
        return {}

    @cached_property
    def _made_of(self) -> dict[str, frozenset[str]]:
        return {}

    @cached_property
    def _orders(self) -> dict[frozenset[str], tuple[str, ...]]:
        return {}

    @cached_property
    def _users(self) -> dict[frozenset[str], tuple[str, ...]]:
        return {}

    def localized(self, locale: str) -> Catalogue:
        """The same catalogue with built-in labels in the locale's language (a workspace's own
        definitions keep the labels it gave them; languages without labels keep English)."""
        from kpis.labels_es import LABELS_ES

        labels = {"es": LABELS_ES}.get(locale.replace("-", "_").split("_")[0].lower())
        if not labels:
            return self
        return Catalogue(
            {k: replace(m, label=labels.get(k, m.label)) if m.pack != "custom" else m
             for k, m in self.metrics.items()},
            {k: replace(v, label=labels.get(k, v.label)) if not v.custom else v
             for k, v in self.kpis.items()},
            self.order,
            self.dimensions,
            self.removed,
        )

    def inputs_of(self, key: str) -> frozenset[str]:
        """The metrics (and readings such as `opening:` gauges) a KPI needs, through the KPIs
        it uses."""
        if key in self.metrics:
            return frozenset({key})
        known = self._inputs.get(key)
        if known is not None:
            return known
        found: set[str] = set()
        for name in self.kpis[key].formula.names:
            if name in BUILTIN_NAMES:
                continue
            if reading_of(name):
                found.add(name)
            else:
                found |= self.inputs_of(name)
        self._inputs[key] = inputs = frozenset(found)
        return inputs

    def computable(self, key: str, available: Collection[str],
                   known: dict[str, bool] | None = None) -> bool:
        """Whether `key` has the inputs it needs among `available`: all of them, except inside
        `first(...)` and `sum(...)`, which need one. `known` keeps the KPIs' answers for the
        same `available` (a KPI is asked once for each KPI that uses it)."""
        if key in self.metrics or reading_of(key):
            return key in available
        if key not in self.kpis:
            return key in BUILTIN_NAMES
        if known is not None and key in known:
            return known[key]
        need = self._needs.get(key)
        if need is None:
            self._needs[key] = need = self._need_of(self.kpis[key].formula.expr)
        met = self._met(need, available, known)
        if known is not None:
            known[key] = met
        return met

    @cached_property
    def _needs(self) -> dict[str, _Need]:
        return {}

    @cached_property
    def _computable(self) -> dict[tuple[tuple[str, ...], frozenset[str]], tuple[str, ...]]:
        return {}

    def computable_of(self, keys: tuple[str, ...], available: frozenset[str]) -> tuple[str, ...]:
        """Those of `keys` that are computable from `available`, in their order; remembered
        per set of inputs with data (a workspace's days have the same few)."""
        memo = (keys, available)
        known = self._computable.get(memo)
        if known is None:
            answers: dict[str, bool] = {}
            known = tuple(k for k in keys if self.computable(k, available, answers))
            if len(self._computable) >= _MEMO_SIZE:
                self._computable.clear()
            self._computable[memo] = known
        return known

    def _met(self, need: _Need, available: Collection[str], known: dict[str, bool] | None) -> bool:
        inputs, kpis, choices = need
        return (inputs.issubset(available)
                and all(self.computable(k, available, known) for k in kpis)
                and all(any(self._met(n, available, known) for n in c) for c in choices))

    def _need_of(self, expr: Expr) -> _Need:
        """What a formula needs, worked out once: inputs that must all have data, KPIs that
        must be computable, and groups (`first`, `sum`) of which one must be met."""
        if isinstance(expr, Number):
            return _NOTHING
        if isinstance(expr, Name):
            if expr.name in self.metrics:
                return frozenset({expr.name}), (), ()
            if expr.name in self.kpis:
                return frozenset(), (expr.name,), ()
            return _NOTHING if expr.name in BUILTIN_NAMES else _NEVER
        if isinstance(expr, Reading):
            return frozenset({f"{expr.kind}:{expr.name}"}), (), ()
        if isinstance(expr, Unary):
            return self._need_of(expr.operand)
        parts = ((expr.left, expr.right) if isinstance(expr, Binary) else expr.args)
        needs = [self._need_of(part) for part in parts]
        if isinstance(expr, Call) and expr.func in PARTIAL_FUNCTIONS:
            return frozenset(), (), (tuple(needs),)
        return (frozenset().union(*(n[0] for n in needs)),
                tuple(k for n in needs for k in n[1]),
                tuple(c for n in needs for c in n[2]))

    def metrics_of(self, key: str) -> frozenset[str]:
        """The logged metrics a KPI (or a metric, itself) is made from; a reading (`opening:`,
        `paid:`, `year:`) counts as its metric. Unknown keys have none."""
        if key not in self.names:
            return frozenset()
        known = self._made_of.get(key)
        if known is None:
            self._made_of[key] = known = frozenset(i.partition(":")[2] or i
                                                   for i in self.inputs_of(key))
        return known

    def evaluation_order(self, keys: Iterable[str]) -> tuple[str, ...]:
        """`keys` and the KPIs their formulas use, in catalogue order: what to evaluate to
        know the values of `keys` (and nothing more)."""
        wanted = frozenset(keys)
        known = self._orders.get(wanted)
        if known is None:
            needed: set[str] = set()
            pending = [k for k in wanted if k in self.kpis]
            while pending:
                key = pending.pop()
                if key not in needed:
                    needed.add(key)
                    pending += [n for n in self.kpis[key].formula.names if n in self.kpis]
            known = tuple(k for k in self.order if k in needed)
            _remember(self._orders, wanted, known)
        return known

    def read_as(self, kind: str) -> frozenset[str]:
        """The metrics some KPI reads as `kind(metric)`: what storage must aggregate that way."""
        return frozenset(
            name for kpi in self.kpis.values() for ref in kpi.formula.names
            if (reading := reading_of(ref)) and reading[0] == kind for name in (reading[1],)
        )

    def method(self, key: str, scope: Mapping[str, float | None]) -> str | None:
        """Which way a KPI with several (`Kpi.methods`) got its value from `scope`."""
        kpi = self.kpis.get(key)
        if kpi is None or not kpi.methods or not isinstance(kpi.formula.expr, Call):
            return None
        for arg, name in zip(kpi.formula.expr.args, kpi.methods, strict=True):
            if evaluate_expr(arg, scope) is not None:
                return name
        return None

    def kpis_using(self, metrics: Iterable[str]) -> list[str]:
        """KPIs (in catalogue order) that read any of `metrics`: what a log entry moves."""
        wanted = frozenset(metrics)
        known = self._users.get(wanted)
        if known is None:
            known = tuple(key for key in self.order if self.metrics_of(key) & wanted)
            _remember(self._users, wanted, known)
        return list(known)

    def metrics_in(self, packs: Iterable[str]) -> list[Metric]:
        chosen = set(packs)
        return [m for m in self.metrics.values() if m.pack in chosen or m.pack == "custom"]

    def kpis_in(self, packs: Iterable[str]) -> list[Kpi]:
        chosen = set(packs)
        return [self.kpis[k] for k in self.order if self.kpis[k].pack in chosen or self.kpis[k].custom]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)


_MEMO_SIZE = 4096


def _remember(memo: dict[frozenset[str], tuple[str, ...]], key: frozenset[str],
              value: tuple[str, ...]) -> None:
    """Keeps a memo keyed by sets of names bounded (a set per combination ever asked)."""
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value


def custom_kpi(key: str, formula_text: str, *, label: str = "", unit: str = "ratio", better: str = "neutral") -> Kpi:
    """A team's own KPI; raises FormulaError when the formula does not parse."""
    return Kpi(key, label or key, parse(formula_text), Unit(unit), Better(better), "custom", formula_text, custom=True)


def custom_metric(key: str, *, label: str = "", unit: str = "count", aggregation: str = "sum") -> Metric:
    return _m(key, label or key, unit, aggregation, "custom")


DEFAULT = Catalogue.build()

__all__ = [
    "Aggregation", "Better", "Catalogue", "DEFAULT", "DEFAULT_PACKS", "DIMENSION_SLOTS", "DIMENSIONS",
    "Dimension", "FormulaError", "HEADLINE_KPIS",
    "KPIS", "METRICS", "ORGANIC_SOURCES", "PAID_SOURCES", "Kpi", "Metric", "PACKS", "Unit",
    "organic_sources", "custom_kpi", "custom_metric",
]
