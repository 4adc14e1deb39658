"""The figures of METRICS.md, computed from the counts kept in Redis: pure functions.

Money stays an exact Decimal until the very end, where it is rounded half-up to the cent.
A ratio or average whose denominator is zero is undefined (None).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from .events import from_units

CENT = Decimal("0.01")

# The report's figure names, in the order a store owner reads them.
COUNT_NAMES = (
    "orders",
    "customers",
    "repeat_customers",
    "multi_product_customers",
    "upsell_offered_customers",
    "upsell_accepted_customers",
)
FIGURE_NAMES = (
    "orders",
    "revenue",
    "customers",
    "average_order_value",
    "revenue_per_customer",
    "repeat_customers",
    "repeat_purchase_rate",
    "multi_product_customers",
    "cross_sell_ratio",
    "upsell_offered_customers",
    "upsell_accepted_customers",
    "upsell_conversion_rate",
    "customer_lifetime_value",
)
MONEY_FIGURES = frozenset(
    {"revenue", "average_order_value", "revenue_per_customer", "customer_lifetime_value"}
)
RATIO_FIGURES = frozenset({"repeat_purchase_rate", "cross_sell_ratio", "upsell_conversion_rate"})


@dataclass(frozen=True)
class Counts:
    """What Redis keeps for one shop and one period or window (money in 1/10000 units)."""

    orders: int = 0
    revenue_units: int = 0
    named_revenue_units: int = 0  # revenue of the orders that have a customer key
    customers: int = 0
    repeat_customers: int = 0
    multi_product_customers: int = 0
    upsell_offered_customers: int = 0
    upsell_accepted_customers: int = 0


def round_money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def money_per(units: int, denominator: int) -> Decimal | None:
    if denominator == 0:
        return None
    return round_money(from_units(units) / denominator)


def customer_lifetime_value(clv_window: Counts, lifespan_years: Decimal) -> Decimal | None:
    """AOV × purchase frequency × lifespan over the 365-day window, which simplifies to
    non-anonymous revenue / customers × lifespan."""
    if clv_window.customers == 0:
        return None
    return round_money(from_units(clv_window.named_revenue_units) * lifespan_years
                       / clv_window.customers)


def figures(counts: Counts, clv_window: Counts, lifespan_years: Decimal) -> dict[str, object]:
    """Every figure of METRICS.md section 4, keyed by its name."""
    return {
        "orders": counts.orders,
        "revenue": round_money(from_units(counts.revenue_units)),
        "customers": counts.customers,
        "average_order_value": money_per(counts.revenue_units, counts.orders),
        "revenue_per_customer": money_per(counts.named_revenue_units, counts.customers),
        "repeat_customers": counts.repeat_customers,
        "repeat_purchase_rate": ratio(counts.repeat_customers, counts.customers),
        "multi_product_customers": counts.multi_product_customers,
        "cross_sell_ratio": ratio(counts.multi_product_customers, counts.customers),
        "upsell_offered_customers": counts.upsell_offered_customers,
        "upsell_accepted_customers": counts.upsell_accepted_customers,
        "upsell_conversion_rate": ratio(
            counts.upsell_accepted_customers, counts.upsell_offered_customers
        ),
        "customer_lifetime_value": customer_lifetime_value(clv_window, lifespan_years),
    }
