"""The textbook figures, from counts (money in 1/10000 units)."""

from decimal import Decimal

from xsell_stream.metrics import Counts, figures

U = 10_000


def test_textbook_examples():
    counts = Counts(orders=1000, revenue_units=50_000 * U, named_revenue_units=50_000 * U,
                    customers=1000, repeat_customers=300, multi_product_customers=200,
                    upsell_offered_customers=500, upsell_accepted_customers=100)
    clv = Counts(orders=3000, named_revenue_units=150_000 * U, customers=1000)
    f = figures(counts, clv, Decimal(5))
    assert f["average_order_value"] == Decimal("50.00")
    assert f["cross_sell_ratio"] == 0.2
    assert f["upsell_conversion_rate"] == 0.2
    assert f["repeat_purchase_rate"] == 0.3
    # AOV 50 x 3 orders a year x 5 years
    assert f["customer_lifetime_value"] == Decimal("750.00")


def test_revenue_per_customer_uses_only_non_anonymous_revenue():
    counts = Counts(orders=2500, revenue_units=120_000 * U, named_revenue_units=100_000 * U,
                    customers=2000)
    f = figures(counts, Counts(), Decimal(3))
    assert f["revenue_per_customer"] == Decimal("50.00")
    assert f["average_order_value"] == Decimal("48.00")


def test_undefined_when_the_denominator_is_zero():
    f = figures(Counts(), Counts(), Decimal(3))
    for name in ("average_order_value", "revenue_per_customer", "repeat_purchase_rate",
                 "cross_sell_ratio", "upsell_conversion_rate", "customer_lifetime_value"):
        assert f[name] is None
    assert f["orders"] == 0 and f["revenue"] == Decimal("0.00")


def test_money_rounds_half_up_at_the_end():
    # 0.005 exactly rounds up; a banker's rounding would give 0.00
    f = figures(Counts(orders=2, revenue_units=100), Counts(), Decimal(3))
    assert f["revenue"] == Decimal("0.01")
    assert f["average_order_value"] == Decimal("0.01")  # 0.005 -> 0.01
