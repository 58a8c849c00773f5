"""SearchCoupons requests: predicates, ordering and paging checked and turned into typed filters.

Everything a caller can get wrong is refused here with 201 ApiInputValidationError and Details naming
the predicate, field, operator or value at fault; the SQL adapter only ever sees valid filters.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from couponsvc.domain.emails import address_key, printable
from couponsvc.domain.errors import Err, ServiceFault
from couponsvc.domain.model import class_name_key
from couponsvc.domain.values import INT64_MAX, parse_long

MAX_PREDICATES = 20
MAX_IN_VALUES = 1000
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


class Field(enum.StrEnum):
    CUSTOMER_ID = "CustomerId"
    COUPON_CLASS_NAME = "CouponClassName"
    COUPON_CODE = "CouponCode"
    SEND_TO_EMAIL = "SendToEmail"
    IS_REDEEMED = "IsRedeemed"


class Op(enum.StrEnum):
    EQUALS = "Equals"
    NOT_EQUALS = "NotEquals"
    IN = "In"
    CONTAINS = "Contains"
    STARTS_WITH = "StartsWith"


class SortField(enum.StrEnum):
    ID = "Id"  # load order
    COUPON_CLASS_NAME = "CouponClassName"
    COUPON_START_DATE = "CouponStartDate"


_TEXT_OPS = frozenset(Op)
ALLOWED_OPS: dict[Field, frozenset[Op]] = {
    Field.CUSTOMER_ID: frozenset({Op.EQUALS, Op.NOT_EQUALS, Op.IN}),
    Field.COUPON_CLASS_NAME: _TEXT_OPS,
    Field.COUPON_CODE: _TEXT_OPS,
    Field.SEND_TO_EMAIL: _TEXT_OPS,
    Field.IS_REDEEMED: frozenset({Op.EQUALS, Op.NOT_EQUALS}),
}
#: text fields compared without regard to case (class names and addresses are case-insensitive; codes are not)
CASE_INSENSITIVE = frozenset({Field.COUPON_CLASS_NAME, Field.SEND_TO_EMAIL})


@dataclass(frozen=True, slots=True)
class RawPredicate:
    field: str | None
    operator: str | None
    value: str | None


@dataclass(frozen=True, slots=True)
class RawOrderBy:
    field: str | None
    order: str | None


@dataclass(frozen=True, slots=True)
class RawPaging:
    index: int | str | None
    size: int | str | None


@dataclass(frozen=True, slots=True)
class Filter:
    field: Field
    op: Op
    values: tuple[str | int | bool, ...]  # one value, or several for In


@dataclass(frozen=True, slots=True)
class Sort:
    field: SortField
    descending: bool


@dataclass(frozen=True, slots=True)
class SearchQuery:
    filters: tuple[Filter, ...]
    ordering: tuple[Sort, ...]
    page_index: int
    page_size: int

    @property
    def offset(self) -> int:
        return self.page_index * self.page_size


def _invalid(details: str) -> ServiceFault:
    return ServiceFault(Err.API_INPUT_VALIDATION_ERROR, details)


def _enum(kind: type[enum.StrEnum], raw: str | None, what: str) -> enum.StrEnum:
    if raw is None or not raw.strip():
        raise _invalid(f"{what} is required; one of {', '.join(m.value for m in kind)}")
    for member in kind:
        if member.value.lower() == raw.strip().lower():
            return member
    raise _invalid(f"{what} {printable(raw, 60)!r} is not supported; use one of {', '.join(m.value for m in kind)}")


def _value(field: Field, raw: str, where: str) -> str | int | bool:
    if field is Field.CUSTOMER_ID:
        value = parse_long(raw, f"{where} Value")
        if value is None or not 0 < value <= INT64_MAX:
            raise _invalid(f"{where} Value must be a positive customer id, got {value}")
        return value
    if field is Field.IS_REDEEMED:
        text = raw.strip().lower()
        if text not in ("true", "false"):
            raise _invalid(f"{where} Value must be true or false, got {printable(raw, 40)!r}")
        return text == "true"
    if field is Field.COUPON_CLASS_NAME:
        return class_name_key(raw)
    if field is Field.SEND_TO_EMAIL:
        return address_key(raw)
    return raw


def parse_predicate(raw: RawPredicate | None, position: int) -> Filter:
    where = f"Predicates[{position}]"
    if raw is None:
        raise _invalid(f"{where} is null")
    field = Field(_enum(Field, raw.field, f"{where} Field"))
    op = Op(_enum(Op, raw.operator, f"{where} Operator"))
    if op not in ALLOWED_OPS[field]:
        allowed = ", ".join(o.value for o in Op if o in ALLOWED_OPS[field])
        raise _invalid(f"{where}: operator {op.value} cannot be used with {field.value}; use {allowed}")
    if raw.value is None or (not raw.value.strip() and field is not Field.COUPON_CODE):
        raise _invalid(f"{where} Value is required")
    if not raw.value.replace(" ", "").isprintable():
        # no code, class name or address holds one, and PostgreSQL cannot even compare text with a NUL
        raise _invalid(f"{where} Value '{printable(raw.value, 60)}' has control or unprintable characters")
    if op is Op.IN:
        parts = [p.strip() for p in raw.value.split(",")]
        if any(not p for p in parts):
            raise _invalid(f"{where} Value has an empty item; In takes comma-separated values")
        if len(parts) > MAX_IN_VALUES:
            raise _invalid(f"{where} Value has {len(parts)} items; at most {MAX_IN_VALUES}")
        values = tuple(dict.fromkeys(_value(field, p, where) for p in parts))
    else:
        values = (_value(field, raw.value, where),)
    return Filter(field, op, values)


def parse_order_by(raw: RawOrderBy | None, position: int) -> Sort:
    where = f"Ordering[{position}]"
    if raw is None:
        raise _invalid(f"{where} is null")
    field = SortField(_enum(SortField, raw.field, f"{where} Field"))
    order = (raw.order or "Ascending").strip().lower()
    if order not in ("ascending", "descending"):
        raise _invalid(f"{where} Order {printable(raw.order or '', 40)!r} must be Ascending or Descending")
    return Sort(field, order == "descending")


def _page_number(raw: int | str | None, what: str, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool):
        raise _invalid(f"{what} must be a whole number")
    if isinstance(raw, str):
        try:
            raw = int(raw.strip())
        except ValueError:
            raise _invalid(f"{what} must be a whole number") from None
    return raw


def parse_query(predicates: Sequence[RawPredicate | None] | None, ordering: Sequence[RawOrderBy | None] | None,
                paging: RawPaging | None) -> SearchQuery:
    predicates = predicates or []
    if len(predicates) > MAX_PREDICATES:
        raise _invalid(f"Predicates has {len(predicates)} items; at most {MAX_PREDICATES}")
    filters = tuple(parse_predicate(p, i) for i, p in enumerate(predicates))
    sorts = tuple(parse_order_by(o, i) for i, o in enumerate(ordering or []))
    seen: set[SortField] = set()
    for i, s in enumerate(sorts):
        if s.field in seen:
            raise _invalid(f"Ordering[{i}] repeats the field {s.field.value}")
        seen.add(s.field)
    index = _page_number(paging.index if paging else None, "PageInfo Index", 0)
    size = _page_number(paging.size if paging else None, "PageInfo Size", DEFAULT_PAGE_SIZE)
    if index < 0 or index > 10_000_000:
        raise _invalid(f"PageInfo Index must be from 0 (the first page), got {index}")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _invalid(f"PageInfo Size must be from 1 to {MAX_PAGE_SIZE}, got {size}")
    return SearchQuery(filters, sorts, index, size)
