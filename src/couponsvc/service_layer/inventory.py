"""Inventory, operator side: every class with its counts and low-stock warning, one class's page, the daily
activity chart data, and coupon lookups across customers (the console and `couponsvc coupons`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from couponsvc.adapters import console_queries as q
from couponsvc.adapters import coupon_queries
from couponsvc.adapters.console_queries import ClassRow, CodeRow
from couponsvc.domain.coupons import CouponView
from couponsvc.domain.errors import NotFound, OperatorInputError
from couponsvc.domain.model import class_name_key
from couponsvc.domain.search import RawOrderBy, RawPaging, RawPredicate, parse_query
from couponsvc.service_layer import audit
from couponsvc.service_layer.audit import Actor
from couponsvc.service_layer.unit_of_work import UnitOfWork

Clock = Callable[[], datetime]
DEFAULT_LOW_STOCK_SHARE = 0.10
CLASSES_PAGE = 100
CODES_PAGE = 50


@dataclass(frozen=True, slots=True)
class Inventory:
    cls: ClassRow
    available: int
    dispatched: int
    redeemed: int
    expired: int  # unused and past the code's own expiry or the class's dates
    class_expired: bool = False  # past the class's EndDate or ExpirationDate: nothing can be dispatched
    distributed: int = 0  # feature-adoption coupons given to accounts by DistributeCoupons

    @property
    def pool(self) -> int:
        return self.available + self.dispatched + self.redeemed + self.expired + self.distributed

    @property
    def threshold(self) -> int:
        if self.cls.low_stock_threshold is not None:
            return self.cls.low_stock_threshold
        return int(self.pool * DEFAULT_LOW_STOCK_SHARE + 0.999999)  # 10 % of the pool, rounded up

    @property
    def low_stock(self) -> bool:
        return self.pool > 0 and not self.class_expired and self.available < self.threshold

    def as_dict(self) -> dict[str, object]:
        return {"customer_id": self.cls.customer_id, "name": self.cls.name, "available": self.available,
                "dispatched": self.dispatched, "distributed": self.distributed, "redeemed": self.redeemed,
                "expired": self.expired}


@dataclass(frozen=True, slots=True)
class DailyActivity:
    days: list[str]  # YYYY-MM-DD, oldest first
    dispatched: list[int]
    redeemed: list[int]


def _inventories(conn: Connection, rows: Sequence[ClassRow], now: datetime) -> list[Inventory]:
    counts = q.state_counts(conn, [r.id for r in rows], now)
    out = []
    for r in rows:
        n = counts[r.id]
        available = n["available"]
        expired = available if r.expired(now) else n["expired_codes"]
        out.append(Inventory(r, available - expired, n["dispatched"], n["redeemed"], expired, r.expired(now),
                             n["distributed"]))
    return out


def overview(uow: UnitOfWork, clock: Clock, customer_ids: Sequence[int] | None = None, *, page: int = 0,
             page_size: int = CLASSES_PAGE) -> tuple[list[Inventory], int]:
    """One page of every customer's classes with their counts, and how many classes there are."""
    with uow.read() as store:
        rows = q.classes(store.conn, customer_ids, limit=page_size, offset=page * page_size)
        total = q.count_classes(store.conn)
        return _inventories(store.conn, rows, clock()), total


def class_inventory(uow: UnitOfWork, clock: Clock, customer_id: int, class_name: str) -> Inventory:
    with uow.read() as store:
        row = q.coupon_class(store.conn, customer_id, class_name_key(class_name))
        if row is None:
            raise NotFound(f"customer {customer_id} has no coupon class {class_name!r}")
        return _inventories(store.conn, [row], clock())[0]


def daily_activity(uow: UnitOfWork, clock: Clock, days: int = 30, class_id: int | None = None) -> DailyActivity:
    """Coupons dispatched (allocated) and redeemed per UTC day, the last ``days`` days including today."""
    today = clock().replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [today - timedelta(days=days - 1 - i) for i in range(days)]
    with uow.read() as store:
        sent = q.dispatched_per_day(store.conn, starts, class_id)
        redeemed = q.redeemed_per_day(store.conn, starts, class_id)
    return DailyActivity([d.strftime("%Y-%m-%d") for d in starts], sent, redeemed)


def codes(uow: UnitOfWork, class_id: int, *, after_id: int = 0, search: str | None = None,
          state: str | None = None, limit: int = CODES_PAGE) -> list[CodeRow]:
    if state not in (None, "", "available", "dispatched", "distributed", "redeemed"):
        raise OperatorInputError(f"state {state!r}: use available, dispatched, distributed or redeemed")
    with uow.read() as store:
        return q.codes_page(store.conn, class_id, after_id=after_id, limit=limit, search=search or None,
                            state=state or None)


def set_low_stock_threshold(uow: UnitOfWork, clock: Clock, actor: Actor, customer_id: int, class_name: str,
                            threshold: int | None) -> None:
    """``None`` goes back to the default (10 % of the pool)."""
    if threshold is not None and not 0 <= threshold <= 1_000_000_000:
        raise OperatorInputError("the low-stock threshold must be a whole number from 0 to 1,000,000,000")
    with uow.write() as store:
        row = q.coupon_class(store.conn, customer_id, class_name_key(class_name))
        if row is None:
            raise NotFound(f"customer {customer_id} has no coupon class {class_name!r}")
        q.set_threshold(store.conn, row.id, threshold)
        audit.record(store, clock(), actor, "class.threshold", f"class {customer_id}/{row.name}",
                     "default (10 % of the pool)" if threshold is None else f"{threshold}")


def search_coupons(uow: UnitOfWork, customer_ids: Sequence[int] | None, *, class_name: str | None = None,
                   code: str | None = None, send_to: str | None = None, redeemed: bool | None = None,
                   order: str = "Id", descending: bool = False, page: int = 0, size: int = 100,
                   ) -> list[CouponView]:
    """SearchCoupons' filters, ordering and paging, across the given customers (all when None)."""
    predicates = []
    if class_name:
        predicates.append(RawPredicate("CouponClassName", "Equals", class_name))
    if code:
        predicates.append(RawPredicate("CouponCode", "Equals", code))
    if send_to:
        predicates.append(RawPredicate("SendToEmail", "Equals", send_to))
    if redeemed is not None:
        predicates.append(RawPredicate("IsRedeemed", "Equals", str(redeemed).lower()))
    query = parse_query(predicates, [RawOrderBy(order, "Descending" if descending else "Ascending")],
                        RawPaging(page, size))
    with uow.read() as store:
        scope = list(customer_ids) if customer_ids else q.customer_ids(store.conn)
        return coupon_queries.search(store.conn, scope, query)
