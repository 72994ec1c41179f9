"""Reading getOrder's answer (Orders API v2026-01-01) against Amazon's own examples:
pure, no database, no network."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from portal.amazon_orders import MalformedOrder, Money, Window, read_order
from tests.spapi_standin import EXAMPLE_ORDERS

UK_ORDER = "202-1234567-8901234"  # the model's 200 example: shipped by the seller, a package
BR_ORDER = "171-9876543-2109876"  # a sandbox answer: unshipped, no packages


def test_the_models_example_order_is_read_field_by_field():
    order = read_order(EXAMPLE_ORDERS[UK_ORDER])
    assert order.order_id == UK_ORDER
    assert order.marketplace_id == "A1F83G8C2ARO7P"
    assert order.created_at == datetime(2024, 12, 25, 9, 15, tzinfo=UTC)
    assert order.fulfillment_status == "SHIPPED"
    assert order.fulfilled_by == "MERCHANT"
    assert order.programs == ("PRIME",)
    assert order.ship_by == Window(
        datetime(2024, 12, 25, tzinfo=UTC), datetime(2024, 12, 26, 23, 59, 59, tzinfo=UTC)
    )
    assert order.deliver_by.latest == datetime(2024, 12, 30, 23, 59, 59, tzinfo=UTC)
    assert order.total == Money(Decimal("103.97"), "GBP")
    (item,) = order.items
    assert item.asin == "B08DFPV54V"
    assert item.title.startswith("Echo Dot (4th Gen)")
    assert item.seller_sku == "ECHO-DOT-4-UK-CHARCOAL-3PACK"
    assert item.quantity == 3
    assert str(item.unit_price) == "29.99 GBP"
    (package,) = order.packages
    assert (package.carrier, package.tracking_number) == ("Royal Mail", "RR123456789GB")
    assert (package.status, package.detailed_status) == ("IN_TRANSIT", "OUT_FOR_DELIVERY")
    assert order.is_open
    assert order.delivery_date == order.deliver_by.latest
    assert order.buyer_name == "James Wilson"  # present in the example: BUYER was asked for


@pytest.mark.parametrize("order_id", sorted(EXAMPLE_ORDERS))
def test_every_example_answer_is_read(order_id):
    order = read_order(EXAMPLE_ORDERS[order_id])
    assert order.order_id == order_id
    assert order.items and all(i.asin and i.quantity > 0 for i in order.items)
    assert order.fulfillment_status in ("SHIPPED", "UNSHIPPED")


def test_an_order_without_optional_data_sets_is_still_an_order():
    answer = copy.deepcopy(EXAMPLE_ORDERS[BR_ORDER])
    for key in ("fulfillment", "proceeds", "buyer", "recipient", "packages", "programs"):
        answer["order"].pop(key, None)
    order = read_order(answer)
    assert order.fulfillment_status is None and order.ship_by is None
    assert order.total is None and order.packages == () and order.programs == ()
    assert order.buyer_name is None
    assert not order.is_open and order.delivery_date is None


def test_a_delivered_or_cancelled_order_is_no_longer_open():
    answer = copy.deepcopy(EXAMPLE_ORDERS[UK_ORDER])
    answer["order"]["packages"][0]["packageStatus"]["status"] = "DELIVERED"
    assert not read_order(answer).is_open
    answer["order"]["packages"] = []
    answer["order"]["fulfillment"]["fulfillmentStatus"] = "CANCELLED"
    assert not read_order(answer).is_open


def test_fields_of_the_wrong_shape_are_left_out_not_trusted():
    answer = copy.deepcopy(EXAMPLE_ORDERS[UK_ORDER])
    order = answer["order"]
    order["createdTime"] = "yesterday"
    order["proceeds"]["grandTotal"] = {"amount": "NaN", "currencyCode": "GBP"}
    order["programs"] = ["PRIME", 7, ""]
    order["orderItems"][0]["quantityOrdered"] = "3"
    order["orderItems"][0]["product"]["title"] = "x" * 2000
    order["orderItems"].append("not an item")
    order["packages"] = {"carrier": "not a list"}
    read = read_order(answer)
    assert read.created_at is None and read.total is None
    assert read.programs == ("PRIME",)
    assert read.items[0].quantity == 0 and len(read.items[0].title) == 500
    assert len(read.items) == 1 and read.packages == ()


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        {},
        {"order": "202-1234567-8901234"},
        {"order": {"orderItems": []}},
        {"order": {"orderId": " ", "orderItems": []}},
        {"order": {"orderId": UK_ORDER}},
        {"errors": [{"code": "InvalidInput", "message": "Invalid Input"}]},
    ],
)
def test_an_answer_without_the_orders_core_is_malformed(answer):
    with pytest.raises(MalformedOrder):
        read_order(answer)
