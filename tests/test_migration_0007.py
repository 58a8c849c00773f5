"""Migration 0007 on a database that already holds coupons (SQLite rebuilds the coupons table for the new
CHECK constraints): every row survives, and the new rules hold afterwards."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from couponsvc.adapters.db import make_engine
from couponsvc.adapters.migrate import current_revision, upgrade
from tests.support.databases import database_url


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_upgrade_keeps_the_coupons_and_enforces_the_new_rules(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        try:
            upgrade(engine, "0003")
            now = datetime(2026, 5, 1, 12, 0, 0)
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO customers (id, name) VALUES (222, 'C')"))
                conn.execute(text("INSERT INTO accounts (id, customer_id, number, currency_code) "
                                  "VALUES (111, 222, 'F111', 'USD'), (112, 222, 'F112', 'USD')"))
                conn.execute(text("INSERT INTO coupon_classes (id, customer_id, name, name_key) "
                                  "VALUES (1, 222, 'K', 'k')"))
                conn.execute(text(
                    "INSERT INTO coupons (id, class_id, code, state, origin, created_at, redeemed_account_id, "
                    "redemption_date, send_to_email, send_to_email_key) VALUES "
                    "(1, 1, 'A', 'available', 'seed', :now, NULL, NULL, NULL, NULL), "
                    "(2, 1, 'B', 'redeemed', 'seed', :now, 111, :now, NULL, NULL), "
                    "(3, 1, 'C', 'dispatched', 'seed', :now, NULL, NULL, 'x@example.com', 'x@example.com'), "
                    "(4, 1, 'D', 'available', 'seed', :now, NULL, NULL, NULL, NULL)"), {"now": now})
            upgrade(engine, "0007")
            assert current_revision(engine) == "0007"
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT id, code, state, redeemed_account_id, send_to_email_key, "
                                         "distributed_account_id FROM coupons ORDER BY id")).all()
                assert [tuple(r) for r in rows] == [
                    (1, "A", "available", None, None, None), (2, "B", "redeemed", 111, None, None),
                    (3, "C", "dispatched", None, "x@example.com", None), (4, "D", "available", None, None, None)]
                assert conn.scalar(text("SELECT kind FROM dispatches")) is None  # no dispatches, column exists
            with engine.begin() as conn:
                conn.execute(text("UPDATE coupons SET state = 'distributed', distributed_account_id = 112 "
                                  "WHERE id = 1"))
            for bad in ("UPDATE coupons SET state = 'distributed', distributed_account_id = 112 WHERE id = 4",
                        "UPDATE coupons SET state = 'distributed' WHERE id = 4",
                        "UPDATE coupons SET state = 'lost' WHERE id = 4"):
                with pytest.raises(IntegrityError), engine.begin() as conn:
                    conn.execute(text(bad))
        finally:
            engine.dispose()
