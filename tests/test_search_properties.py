"""SearchCoupons equals a plain in-memory filter of the same coupons (hypothesis), on SQLite and PostgreSQL;
and the refusals of the request parser (domain/search.py), each a 201 whose Details name what is wrong.

The model below is written from the specification, not from the SQL: coupons of the caller's customers only;
class names compared without regard to case (Unicode case folding) and addresses without regard to ASCII
case, both trimmed; codes compared exactly; NotEquals also matches a field that is null; In takes comma-
separated values; ordering by the given keys, ties broken by load order (Id); a null CouponStartDate sorts
first ascending and last descending; pages are zero-based with 100 rows by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from couponsvc.adapters import schema as t
from couponsvc.bootstrap import Container
from couponsvc.domain.errors import ServiceFault
from couponsvc.domain.search import (
    MAX_IN_VALUES,
    MAX_PREDICATES,
    RawOrderBy,
    RawPaging,
    RawPredicate,
    parse_query,
)
from couponsvc.service_layer.auth import Principal
from couponsvc.service_layer.coupons import RedeemCouponRequest, SearchCouponsRequest, redeem_coupon, search_coupons
from tests.support.databases import database_url
from tests.support.service import make_container

SCOPE = frozenset({222, 555})  # the caller's customers; 333's coupons must never appear

# (customer, class name, start date, codes): names differ in case across customers, share prefixes, use
# characters that LIKE treats specially and letters whose case folding changes their length (ß -> ss)
CLASSES: list[tuple[int, str, str | None, list[str]]] = [
    (222, "Spring-100", "2024-03-01T00:00:00Z", ["SPR-001", "SPR-002", "spr-001", "Spr-010", "SPR-0010", "SPR-1"]),
    (222, "spring-10", "2024-03-01T00:00:00Z", ["SPR-10-A", "SPR-10-b", "SPR-10-B"]),
    (222, "Straße-Été", None, ["STR-a", "STR-A", "STR-ab", "str-AB"]),
    (222, "SUMMER_%", "2025-01-01T00:00:00Z", ["SUM-%_1", "SUM-\\x", "SUM-1", "SUM-11", "SUM_1"]),
    (555, "SPRING-100", "2023-01-01T00:00:00Z", ["N-SPR-001", "N-spr-001", "N-SPR-0010"]),
    (555, "Autumn", "2024-09-09T00:00:00Z", [f"AUT-{i}" for i in range(1, 7)]),
    (555, "STRASSE-ÉTÉ", "2022-02-02T00:00:00Z", ["NS-1", "NS-2"]),
    (333, "Spring-100", "2024-03-01T00:00:00Z", ["B-SPR-001", "B-spr-001", "SPR-003", "AUT-7"]),
    (333, "autumn", None, ["B-AUT-1", "B-SUM-%_1"]),
]
# code -> address it was dispatched to (case as given)
SENT = {
    "SPR-001": "Ann@Example.com", "SPR-002": "bob.smith@Example.COM", "spr-001": "ann@example.org",
    "SPR-10-A": "ANN@example.com", "STR-a": "x_y%z@example.com", "STR-ab": "Zed@zed.io", "SUM-%_1": "Ann@Example.com",
    "N-SPR-001": "ann@EXAMPLE.com", "AUT-1": "carol@example.net", "AUT-2": "Bob.Smith@example.com",
    "NS-1": "x_y%z@example.com", "B-SPR-001": "Ann@Example.com", "B-AUT-1": "zed@zed.io",
}
# code -> account it was redeemed into (dispatched or straight from available)
REDEEMED = {"SPR-001": 111, "SPR-0010": 112, "STR-A": 111, "SUM-\\x": 111, "N-SPR-001": 556, "AUT-6": 556,
            "AUT-2": 556, "B-SPR-001": 444, "B-spr-001": 444}

EMAILS = sorted(set(SENT.values()))
NAMES = [name for _, name, _, _ in CLASSES]
CODES = [code for *_, codes in CLASSES for code in codes]


@dataclass(frozen=True)
class Row:
    id: int
    customer: int
    code: str
    class_name: str
    start: datetime | None
    email: str | None
    redeemed: bool


def seed() -> dict[str, Any]:
    customers: dict[int, dict[str, Any]] = {
        222: {"id": 222, "name": "Contoso", "accounts": [{"id": 111, "currency_code": "USD"},
                                                          {"id": 112, "currency_code": "EUR"}]},
        555: {"id": 555, "name": "Northwind", "accounts": [{"id": 556, "currency_code": "USD"}]},
        333: {"id": 333, "name": "Fabrikam", "accounts": [{"id": 444, "currency_code": "USD"}]},
    }
    for customer, name, start, codes in CLASSES:
        customers[customer].setdefault("coupon_classes", []).append(
            {"name": name, "percent_off": 10.0, "start_date": start, "codes": codes})
    return {"developer_tokens": [{"token": "DEV-PROP", "name": "props"}], "customers": list(customers.values())}


def build(container: Container) -> list[Row]:
    """Dispatch and redeem as listed; the rows as the model knows them (Id read back: load order)."""
    c = t.coupons.c
    with container.uow.write() as store:
        for code, email in SENT.items():
            store.conn.execute(update(t.coupons).where(c.code == code).values(
                state="dispatched", send_to_email=email, send_to_email_key=email.lower(),
                send_to_date=datetime(2026, 5, 1)))
    owners = {111: 222, 112: 222, 556: 555, 444: 333}
    for code, account in REDEEMED.items():
        principal = Principal(0, frozenset({owners[account]}))
        redeem_coupon(container.uow, container.clock, principal, RedeemCouponRequest(account, code))
    with container.uow.read() as store:
        ids = dict(store.conn.execute(select(c.code, c.id)).all())
    rows = []
    for customer, name, start, codes in CLASSES:
        start_dt = None if start is None else datetime.fromisoformat(start.replace("Z", ""))
        rows += [Row(ids[code], customer, code, name, start_dt, SENT.get(code), code in REDEEMED) for code in codes]
    return rows


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[tuple[Container, list[Row]]]:
    tmp = tmp_path_factory.mktemp(f"props-{request.param}")
    with database_url(request.param, tmp) as url:
        container = make_container(tmp, seed(), DATABASE_URL=url)
        try:
            yield container, build(container)
        finally:
            container.close()


# --- the model ----------------------------------------------------------------------------------------
def class_key(text: str) -> str:
    return text.strip().casefold()


def address_key(text: str) -> str:
    return text.strip(" ").lower()


def matches(row: Row, p: RawPredicate) -> bool:
    assert p.field is not None and p.operator is not None and p.value is not None
    op, value = p.operator, p.value
    if p.field == "CustomerId":
        ids = {int(v) for v in value.split(",")}
        return {"Equals": row.customer in ids, "NotEquals": row.customer not in ids, "In": row.customer in ids}[op]
    if p.field == "IsRedeemed":
        wanted = value.strip().lower() == "true"
        return row.redeemed == wanted if op == "Equals" else row.redeemed != wanted
    field: str | None
    if p.field == "CouponClassName":
        field, key = row.class_name, class_key
    elif p.field == "SendToEmail":
        field, key = row.email, address_key
    else:
        field, key = row.code, (lambda s: s)
    if op == "In":
        wanted_set = {key(v.strip()) for v in value.split(",")}
        return field is not None and key(field) in wanted_set
    if op == "NotEquals":
        return field is None or key(field) != key(value)
    if field is None:
        return False
    if op == "Equals":
        return key(field) == key(value)
    if op == "Contains":
        return key(value) in key(field)
    assert op == "StartsWith"
    return key(field).startswith(key(value))


def expected(rows: list[Row], predicates: list[RawPredicate], ordering: list[RawOrderBy],
             paging: RawPaging | None) -> list[Row]:
    found = [r for r in rows if r.customer in SCOPE and all(matches(r, p) for p in predicates)]
    found.sort(key=lambda r: r.id)
    for o in reversed(ordering):  # stable sorts, last key first
        desc = o.order == "Descending"
        if o.field == "Id":
            found.sort(key=lambda r: r.id, reverse=desc)
        elif o.field == "CouponClassName":
            found.sort(key=lambda r: r.class_name.casefold(), reverse=desc)
        else:  # CouponStartDate: null first ascending, last descending
            found.sort(key=lambda r: (r.start is not None, r.start or datetime.min), reverse=desc)
    index = paging.index if paging and paging.index is not None else 0
    size = paging.size if paging and paging.size is not None else 100
    assert isinstance(index, int) and isinstance(size, int)
    return found[index * size:(index + 1) * size]


# --- strategies ---------------------------------------------------------------------------------------
def variants(values: list[str]) -> st.SearchStrategy[str]:
    """The values themselves, in other cases, and pieces of them (prefixes, infixes)."""
    base = st.sampled_from(values)
    return st.one_of(
        base,
        base.map(str.upper), base.map(str.lower), base.map(str.swapcase),
        st.tuples(base, st.integers(1, 8)).map(lambda v: v[0][:v[1]]),
        st.tuples(base, st.integers(0, 6), st.integers(1, 5)).map(lambda v: v[0][v[1]:v[1] + v[2]]),
    )


TEXT = {
    "CouponClassName": st.one_of(variants(NAMES), st.sampled_from(["strasse", "STRASSE-été", " spring-10 ", "%", "_",
                                                                  "ss", "nope"])),
    "CouponCode": st.one_of(variants(CODES), st.sampled_from(["", "%", "_", "\\", "SPR-", "-0", "no-such"])),
    "SendToEmail": st.one_of(variants(EMAILS), st.sampled_from(["%", "_", "@", "ann", "EXAMPLE.COM", "nobody@x.io"])),
}
NOT_BLANK = {"CouponClassName", "SendToEmail"}  # a blank Value is refused for these


@st.composite
def predicates(draw: st.DrawFn) -> RawPredicate:
    field = draw(st.sampled_from(["CustomerId", "CouponClassName", "CouponCode", "SendToEmail", "IsRedeemed"]))
    if field == "CustomerId":
        op = draw(st.sampled_from(["Equals", "NotEquals", "In"]))
        ids = draw(st.lists(st.sampled_from(["222", "555", "333", "999"]), min_size=1, max_size=1 if op != "In" else 3))
        return RawPredicate(field, op, ",".join(ids))
    if field == "IsRedeemed":
        return RawPredicate(field, draw(st.sampled_from(["Equals", "NotEquals"])),
                            draw(st.sampled_from(["true", "false", "True", "FALSE"])))
    op = draw(st.sampled_from(["Equals", "NotEquals", "In", "Contains", "StartsWith"]))
    text = TEXT[field]
    if field in NOT_BLANK or op == "In":
        text = text.filter(lambda s: s.strip() != "")
    if op == "In":
        parts = draw(st.lists(text.filter(lambda s: "," not in s), min_size=1, max_size=4))
        return RawPredicate(field, op, ",".join(parts))
    return RawPredicate(field, op, draw(text))


orderings = st.lists(st.sampled_from(["Id", "CouponClassName", "CouponStartDate"]), max_size=3, unique=True).flatmap(
    lambda fields: st.tuples(*[st.sampled_from(["Ascending", "Descending"]) for _ in fields]).map(
        lambda orders: [RawOrderBy(f, o) for f, o in zip(fields, orders, strict=True)]))
pagings = st.one_of(st.none(), st.builds(RawPaging, st.one_of(st.none(), st.integers(0, 6)),
                                         st.one_of(st.none(), st.integers(1, 12))))


def view(v: Any) -> tuple[Any, ...]:
    return (v.code, v.class_name, v.customer_id, v.send_to_email, v.is_redeemed)


def row_view(r: Row) -> tuple[Any, ...]:
    return (r.code, r.class_name, r.customer, r.email, r.redeemed)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(preds=st.lists(predicates(), max_size=3), ordering=orderings, paging=pagings)
def test_search_equals_the_in_memory_filter(store: tuple[Container, list[Row]], preds: list[RawPredicate],
                                            ordering: list[RawOrderBy], paging: RawPaging | None) -> None:
    container, rows = store
    principal = Principal(0, SCOPE)
    got = search_coupons(container.uow, principal, SearchCouponsRequest(preds, ordering, paging))
    assert [view(v) for v in got] == [row_view(r) for r in expected(rows, preds, ordering, paging)]


def test_the_data_exercises_what_it_should(store: tuple[Container, list[Row]]) -> None:
    """Guards the properties against a data set that went flat: states, nulls, case and prefix variety."""
    container, rows = store
    assert len(rows) == len(CODES)
    assert {r.redeemed for r in rows} == {True, False}
    assert any(r.email is None for r in rows) and any(r.email and r.redeemed for r in rows)
    assert any(r.start is None for r in rows)
    got = search_coupons(container.uow, Principal(0, SCOPE), SearchCouponsRequest(None, None, RawPaging(0, 1000)))
    assert len(got) == sum(1 for r in rows if r.customer in SCOPE)
    # a few fixed examples, so that a failure of the property has a readable twin
    principal = Principal(0, SCOPE)

    def codes(*preds: RawPredicate, order: list[RawOrderBy] | None = None) -> list[str]:
        return [v.code for v in search_coupons(container.uow, principal, SearchCouponsRequest(list(preds), order,
                                                                                               None))]

    assert codes(RawPredicate("CouponClassName", "Equals", "STRASSE-ÉTÉ")) == ["STR-a", "STR-A", "STR-ab", "str-AB",
                                                                             "NS-1", "NS-2"]
    assert codes(RawPredicate("CouponCode", "StartsWith", "SPR-00")) == ["SPR-001", "SPR-002", "SPR-0010"]
    assert codes(RawPredicate("CouponCode", "Contains", "%_")) == ["SUM-%_1"]
    assert codes(RawPredicate("CouponClassName", "Contains", "_%")) == codes(
        RawPredicate("CouponClassName", "Equals", "summer_%"))
    assert codes(RawPredicate("SendToEmail", "StartsWith", "ANN@")) == ["SPR-001", "spr-001", "SPR-10-A", "SUM-%_1",
                                                                       "N-SPR-001"]
    assert codes(RawPredicate("SendToEmail", "Contains", "_y%")) == ["STR-a", "NS-1"]
    assert codes(RawPredicate("CouponClassName", "In", "autumn,summer_%"),
                 order=[RawOrderBy("CouponClassName", "Descending")]) == [
        "SUM-%_1", "SUM-\\x", "SUM-1", "SUM-11", "SUM_1"] + [f"AUT-{i}" for i in range(1, 7)]


# --- the parser's refusals ----------------------------------------------------------------------------
def refusal(predicates: list[RawPredicate | None] | None = None, ordering: list[RawOrderBy | None] | None = None,
            paging: RawPaging | None = None) -> str:
    with pytest.raises(ServiceFault) as caught:
        parse_query(predicates, ordering, paging)
    assert caught.value.error.code == 201
    assert caught.value.details
    return caught.value.details


@pytest.mark.parametrize(("predicate", "words"), [
    (RawPredicate("Foo", "Equals", "x"), ["Predicates[0]", "Field", "'Foo'", "CouponClassName"]),
    (RawPredicate(None, "Equals", "x"), ["Predicates[0]", "Field", "required"]),
    (RawPredicate(" ", "Equals", "x"), ["Predicates[0]", "Field", "required"]),
    (RawPredicate("CouponCode", "GreaterThanEquals", "x"), ["Operator", "'GreaterThanEquals'", "StartsWith"]),
    (RawPredicate("CouponCode", None, "x"), ["Operator", "required"]),
    (RawPredicate("IsRedeemed", "In", "true"), ["operator In", "IsRedeemed", "Equals, NotEquals"]),
    (RawPredicate("CustomerId", "Contains", "22"), ["operator Contains", "CustomerId"]),
    (RawPredicate("CustomerId", "StartsWith", "22"), ["operator StartsWith", "CustomerId"]),
    (RawPredicate("IsRedeemed", "Equals", "yes"), ["Predicates[0]", "true or false", "'yes'"]),
    (RawPredicate("CustomerId", "Equals", "12a"), ["Predicates[0]", "'12a'"]),
    (RawPredicate("CustomerId", "Equals", "0"), ["Predicates[0]", "positive", "0"]),
    (RawPredicate("CustomerId", "Equals", "-4"), ["positive", "-4"]),
    (RawPredicate("CustomerId", "Equals", "99999999999999999999"), ["Predicates[0]", "range"]),
    (RawPredicate("CustomerId", "In", "1, ,2"), ["Predicates[0]", "empty item"]),
    (RawPredicate("CouponCode", "Equals", None), ["Predicates[0]", "Value", "required"]),
    (RawPredicate("CouponClassName", "Equals", "  "), ["Predicates[0]", "Value", "required"]),
    (RawPredicate("SendToEmail", "Contains", ""), ["Value", "required"]),
    (RawPredicate("CouponCode", "Equals", "a\x00b"), ["Predicates[0]", "control", "\\x00"]),
    (RawPredicate("CouponClassName", "Equals", "x\ny"), ["control", "\\x0a"]),
    (RawPredicate("CouponCode", "In", ",".join(["a"] * (MAX_IN_VALUES + 1))), [str(MAX_IN_VALUES + 1),
                                                                               str(MAX_IN_VALUES)]),
])
def test_predicate_refusals_name_what_is_wrong(predicate: RawPredicate, words: list[str]) -> None:
    details = refusal([predicate])
    for word in words:
        assert word in details, (word, details)


def test_refusal_names_the_position_of_the_bad_predicate() -> None:
    ok = RawPredicate("CouponCode", "Equals", "x")
    assert refusal([ok, ok, RawPredicate("Nope", "Equals", "x")]).startswith("Predicates[2]")
    assert refusal([ok, None]) == "Predicates[1] is null"


def test_too_many_predicates() -> None:
    details = refusal([RawPredicate("CouponCode", "Equals", "x")] * (MAX_PREDICATES + 1))
    assert str(MAX_PREDICATES + 1) in details and str(MAX_PREDICATES) in details


@pytest.mark.parametrize(("ordering", "words"), [
    ([RawOrderBy("Name", "Ascending")], ["Ordering[0]", "'Name'", "CouponStartDate"]),
    ([RawOrderBy(None, "Ascending")], ["Ordering[0]", "Field", "required"]),
    ([RawOrderBy("Id", "Sideways")], ["Ordering[0]", "'Sideways'", "Ascending or Descending"]),
    ([RawOrderBy("Id", None), RawOrderBy("CouponClassName", None), RawOrderBy("ID", "Descending")],
     ["Ordering[2]", "repeats", "Id"]),
    ([None], ["Ordering[0] is null"]),
])
def test_ordering_refusals(ordering: list[RawOrderBy | None], words: list[str]) -> None:
    details = refusal(None, ordering)
    for word in words:
        assert word in details, (word, details)


@pytest.mark.parametrize(("paging", "words"), [
    (RawPaging(-1, 10), ["PageInfo Index", "-1"]),
    (RawPaging(10_000_001, 10), ["PageInfo Index", "10000001"]),
    (RawPaging("x", 10), ["PageInfo Index", "whole number"]),
    (RawPaging(0, 0), ["PageInfo Size", "1 to 1000", "got 0"]),
    (RawPaging(0, 1001), ["PageInfo Size", "1001"]),
    (RawPaging(0, "1.5"), ["PageInfo Size", "whole number"]),
    (RawPaging(0, True), ["PageInfo Size", "whole number"]),
])
def test_paging_refusals(paging: RawPaging, words: list[str]) -> None:
    details = refusal(None, None, paging)
    for word in words:
        assert word in details, (word, details)


def test_defaults_and_accepted_spellings() -> None:
    q = parse_query(None, None, None)
    assert (q.filters, q.ordering, q.page_index, q.page_size) == ((), (), 0, 100)
    q = parse_query([RawPredicate("couponcode", "startswith", "A")], [RawOrderBy("couponstartdate", None)],
                    RawPaging(" 2 ", "1000"))
    assert (q.page_index, q.page_size, q.offset) == (2, 1000, 2000)
    assert q.ordering[0].descending is False
    # In values are trimmed and repeated ones dropped
    (f,) = parse_query([RawPredicate("CouponClassName", "In", " Spring , SPRING,summer")], None, None).filters
    assert f.values == ("spring", "summer")


@settings(max_examples=300, deadline=None)
@given(field=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["CouponCode", "CustomerId", "IsRedeemed"])),
       operator=st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["Equals", "In", "Contains"])),
       value=st.one_of(st.none(), st.text(max_size=30)),
       index=st.one_of(st.none(), st.integers(-5, 20_000_000), st.text(max_size=5)),
       size=st.one_of(st.none(), st.integers(-5, 2000), st.text(max_size=5)))
def test_any_input_parses_or_is_refused_with_201(field: str | None, operator: str | None, value: str | None,
                                                 index: int | str | None, size: int | str | None) -> None:
    try:
        parse_query([RawPredicate(field, operator, value)], [RawOrderBy(field, operator)], RawPaging(index, size))
    except ServiceFault as fault:
        assert fault.error.code == 201 and fault.details


# --- text no database can compare ---------------------------------------------------------------------------
def test_a_value_with_a_nul_is_refused_not_sent_to_the_database(store: tuple[Container, list[Row]]) -> None:
    """PostgreSQL refuses any text holding NUL: such a Value is a 201 before any query, on both databases."""
    container, _ = store
    request = SearchCouponsRequest([RawPredicate("CouponCode", "NotEquals", "SPR\x00001")], None, None)
    with pytest.raises(ServiceFault) as caught:
        search_coupons(container.uow, Principal(0, SCOPE), request)
    assert caught.value.error.code == 201


@pytest.mark.parametrize("code", ["SPR\x00001", "SPR-\n001", "SPR 001", "\ud800"])
def test_redeeming_a_text_that_cannot_be_a_code_is_3006(store: tuple[Container, list[Row]], code: str) -> None:
    container, _ = store
    with pytest.raises(ServiceFault) as caught:
        redeem_coupon(container.uow, container.clock, Principal(0, SCOPE), RedeemCouponRequest(111, code))
    assert caught.value.error.code == 3006
