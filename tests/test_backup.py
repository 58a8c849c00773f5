"""``db backup`` / ``db restore`` of the embedded SQLite database: a backup taken while 1000-address
dispatches run holds only whole calls; restored, the service serves it; bad files, newer schemas and a
running server are refused; on PostgreSQL the pg_dump / pg_restore commands are printed, password hidden."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support import restkit
from tests.support.seeds import BASE_SEED, CUSTOMER, new_class_seed
from tests.support.server import ServerProcess

INFO = "/CustomerBilling/v13/CouponInfo/Query"


def whole_calls_only(path: Path) -> dict[int, int]:
    """Check a backup's dispatches are whole; returns {dispatch id: allocated}."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        dispatches = dict(db.execute("SELECT id, allocated FROM dispatches"))
        coupons = dict(db.execute(
            "SELECT dispatch_id, count(*) FROM coupons WHERE dispatch_id IS NOT NULL AND state <> 'available' "
            "GROUP BY dispatch_id"))
        outbox = dict(db.execute("SELECT dispatch_id, count(*) FROM outbox GROUP BY dispatch_id"))
        for d, allocated in dispatches.items():
            assert coupons.get(d, 0) == allocated, f"dispatch {d}: {coupons.get(d)} coupons of {allocated}"
            assert outbox.get(d, 0) == allocated, f"dispatch {d}: {outbox.get(d)} outbox rows of {allocated}"
        assert set(coupons) <= set(dispatches) and set(outbox) <= set(dispatches)
        orphans = db.execute(
            "SELECT count(*) FROM coupons c WHERE c.state = 'dispatched' AND NOT EXISTS "
            "(SELECT 1 FROM outbox o WHERE o.coupon_id = c.id AND o.dispatch_id = c.dispatch_id)").fetchone()[0]
        assert orphans == 0
        return {int(d): int(n) for d, n in dispatches.items()}
    finally:
        db.close()


def test_backup_while_dispatching_holds_whole_calls_and_restores(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "live", {"COUPONSVC_DELIVERY_TIMEOUT": "0"})
    server.load(BASE_SEED, "base")
    cls, seed = new_class_seed(6000, prefix="BAK")
    server.load(seed, "class")
    server.start()
    run = uuid.uuid4().hex[:6]
    batches = [[f"b{b}-{i}-{run}@example.com" for i in range(1000)] for b in range(6)]
    statuses: list[int] = []
    in_flight = threading.Event()
    taken = threading.Condition()
    backups: list[Path] = []

    def dispatcher(mine: list[list[str]]) -> None:
        # A 1000-address call takes about 0.1 s and starting `db backup` about a second, so unpaced calls could
        # all finish before the first backup: each thread waits for one more backup between its calls, which
        # keeps backups taken while calls run (the other thread's call is usually in flight meanwhile).
        for n, emails in enumerate(mine):
            if n:
                with taken:
                    seen = len(backups)
                    taken.wait_for(lambda seen=seen: len(backups) > seen, timeout=60)
            in_flight.set()
            statuses.append(restkit.dispatch(server.url, emails, class_name=cls).status_code)

    threads = [threading.Thread(target=dispatcher, args=(batches[i::2],)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        in_flight.wait(10)
        while any(t.is_alive() for t in threads) or len(backups) < 3:
            target = tmp_path / f"backup-{len(backups)}.db"
            out = server.cli("db", "backup", str(target))
            assert "backed up to" in out.stdout
            with taken:
                backups.append(target)
                taken.notify_all()
            time.sleep(0.2)
        for t in threads:
            t.join()
        assert statuses == [200] * 6
        # a restore is refused while the server runs, and changes nothing
        refused = server.cli("db", "restore", str(backups[0]), check=False)
        assert refused.returncode == 2 and "in use" in refused.stderr
        assert restkit.post(server.url, INFO, {"CustomerId": str(CUSTOMER)}).status_code == 200
    finally:
        server.stop()

    seen = [whole_calls_only(b) for b in backups]
    sizes = [sum(s.values()) for s in seen]
    assert sizes == sorted(sizes) and sizes[-1] <= 6000
    assert all(n % 1000 == 0 for n in sizes)  # whole 1000-address calls, never a part of one
    assert min(sizes) < 6000 and len(set(sizes)) >= 2, sizes  # some were taken while the calls ran
    print("dispatched coupons in each backup:", sizes)
    # restore a backup taken mid-run (fewest dispatches) and serve it
    chosen = backups[sizes.index(min(sizes))]
    restored = server.cli("db", "restore", str(chosen))
    assert "restored" in restored.stdout and "pre-restore" in restored.stdout
    kept = list((tmp_path / "live").glob("couponsvc.db.pre-restore-*"))
    assert len(kept) == 1 and sum(whole_calls_only(kept[0]).values()) == 6000
    server.start()
    try:
        assert restkit.post(server.url, INFO, {"CustomerId": str(CUSTOMER)}).status_code == 200
        in_backup = min(sizes) // 1000
        db = sqlite3.connect(tmp_path / "live" / "couponsvc.db")
        try:
            held = {row[0] for row in db.execute("SELECT send_to_email FROM coupons WHERE send_to_email IS NOT NULL")}
        finally:
            db.close()
        assert len(held) == min(sizes)
        again = [b for b in batches if b[0] in held]
        missing = [b for b in batches if b[0] not in held]
        assert len(again) == in_backup
        if again:  # what the backup holds is still sent: 3003 for each address
            r = restkit.dispatch(server.url, again[0][:5], class_name=cls)
            assert [e["Code"] for e in r.json()["PartialErrors"]] == [3003] * 5
        r = restkit.dispatch(server.url, missing[0][:5], class_name=cls)  # what it lacks can be sent again
        assert r.status_code == 200 and r.json()["PartialErrors"] == []
        assert httpx.get(server.url + "/health").json()["schema"]
    finally:
        server.stop()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_restore_refuses_what_is_not_a_couponsvc_database_of_a_known_schema(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.load(BASE_SEED, "base")
    db = tmp_path / "data" / "couponsvc.db"
    good = tmp_path / "good.db"
    server.cli("db", "backup", str(good))
    before = digest(db)

    text_file = tmp_path / "notes.db"
    text_file.write_text("hello, I am not a database\n")
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    newer = tmp_path / "newer.db"
    shutil.copy(good, newer)
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    damaged = tmp_path / "damaged.db"
    data = bytearray(good.read_bytes())
    data[len(data) // 2: len(data) // 2 + 4096] = b"\xff" * 4096
    damaged.write_bytes(bytes(data))

    for path, needle in ((text_file, "not a SQLite database"), (other, "not a couponsvc database"),
                         (newer, "schema revision 9999"), (tmp_path / "absent.db", "no such file"),
                         (damaged, "damaged")):
        r = server.cli("db", "restore", str(path), check=False)
        assert r.returncode == 2, (path, r.stdout, r.stderr)
        assert needle in r.stderr or (path == damaged and ("damaged" in r.stderr or "malformed" in r.stderr))
        assert digest(db) == before
    assert not list(db.parent.glob("*.pre-restore-*"))
    ok = server.cli("db", "restore", str(good))
    assert "restored" in ok.stdout


def test_postgresql_prints_the_pg_commands_without_the_password(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {
        "COUPONSVC_DATABASE_URL": "postgresql://coupons:Very-Secret-77@db.internal:5433/couponsvc"})
    dump = server.cli("db", "backup", str(tmp_path / "x.dump"), check=False)
    assert dump.returncode == 3
    assert dump.stdout.strip() == (f"PGPASSWORD=*** pg_dump --format=custom --file={tmp_path / 'x.dump'} "
                                   "--dbname=postgresql://coupons@db.internal:5433/couponsvc")
    restore = server.cli("db", "restore", str(tmp_path / "x.dump"), check=False)
    assert restore.returncode == 3
    assert restore.stdout.startswith("PGPASSWORD=*** pg_restore --clean --if-exists --single-transaction "
                                     "--dbname=postgresql://coupons@db.internal:5433/couponsvc")
    assert "Very-Secret-77" not in dump.stdout + dump.stderr + restore.stdout + restore.stderr


@pytest.mark.parametrize("args", [("backup",), ("restore",)])
def test_backup_commands_have_help(tmp_path: Path, args: tuple[str, ...]) -> None:
    r = ServerProcess(tmp_path).cli("db", *args, "--help")
    assert "SQLite" in r.stdout and "PostgreSQL" in r.stdout
