"""Code pools, operator side: import a CSV, generate random codes, export the unused codes (streamed).

The CLI (`codes import`, `codes generate`) and the console call these same functions.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection

from couponsvc.adapters import admin
from couponsvc.adapters import console_queries as q
from couponsvc.adapters.csvcodes import CsvError, read_codes_csv
from couponsvc.domain.codes import check_capacity
from couponsvc.domain.codes import generate_codes as draw_codes
from couponsvc.domain.errors import NotFound, OperatorInputError
from couponsvc.domain.model import class_name_key
from couponsvc.service_layer import audit
from couponsvc.service_layer.audit import Actor
from couponsvc.service_layer.unit_of_work import UnitOfWork

Clock = Callable[[], datetime]
Progress = Callable[[int], object]
EXPORT_PAGE = 5000


@dataclass(frozen=True, slots=True)
class ImportReport:
    inserted: int
    already_in_class: int
    seconds: float


def class_id(uow: UnitOfWork, customer_id: int, class_name: str) -> int:
    with uow.read() as store:
        return _class_id(store.conn, customer_id, class_name)


def _class_id(conn: Connection, customer_id: int, class_name: str) -> int:
    found = admin.find_class_id(conn, customer_id, class_name_key(class_name))
    if found is None:
        raise NotFound(f"customer {customer_id} has no coupon class {class_name!r};"
                       " define it in a seed file and `couponsvc load` it")
    return found


def import_codes(uow: UnitOfWork, clock: Clock, actor: Actor, customer_id: int, class_name: str, path: Path,
                 *, display_name: str | None = None, progress: Callable[[int], Progress] | None = None,
                 ) -> ImportReport:
    """Import a codes CSV, all or nothing; errors name ``display_name:LINE`` (the file's own name by default).

    ``progress`` is called once with the number of rows and returns the per-chunk callback.
    """
    started = time.perf_counter()
    shown = display_name or str(path)
    class_id(uow, customer_id, class_name)  # a mistyped class fails before a long read
    with _named(path, shown):
        parsed = read_codes_csv(path, check_repeats=False)  # before the transaction: no lock held for it
        with uow.write() as store:
            cid = _class_id(store.conn, customer_id, class_name)
            tick = progress(len(parsed.new)) if progress else None
            report = admin.insert_codes(store.conn, cid, parsed.new, "import", clock(), tick)
            if report.inserted < len(parsed.new):  # some codes were there: perhaps earlier in this very file
                parsed.refuse_repeats()
            if report.conflicts:
                code = report.conflicts[0]
                raise CsvError(f"{shown}:{parsed.lines[code]}: code {code!r} already belongs to another coupon"
                               " class; nothing was imported")
            if report.inserted:  # a re-import that adds nothing changes nothing, the audit log included
                audit.record(store, clock(), actor, "codes.import", f"class {customer_id}/{class_name}",
                             f"{report.inserted} codes from {shown} ({report.already_in_class} already there)")
    return ImportReport(report.inserted, report.already_in_class, time.perf_counter() - started)


@contextmanager
def _named(path: Path, shown: str) -> Iterator[None]:
    """CSV errors name the file as the operator knows it (an upload's own name, not its temporary path)."""
    try:
        yield
    except CsvError as exc:
        raise CsvError(str(exc).replace(str(path), shown, 1)) from None


def generate_codes(uow: UnitOfWork, clock: Clock, actor: Actor, customer_id: int, class_name: str, count: int,
                   pattern: str, *, progress: Callable[[int], Progress] | None = None) -> int:
    """Add ``count`` random codes from ``pattern`` (all or nothing)."""
    if not 1 <= count <= 10_000_000:
        raise OperatorInputError("the count must be between 1 and 10,000,000")
    try:
        check_capacity(pattern, count)
    except ValueError as exc:
        raise OperatorInputError(f"pattern {pattern!r}: {exc}") from None
    with uow.write() as store:
        cid = _class_id(store.conn, customer_id, class_name)
        tick = progress(count) if progress else None
        admin.generate_into_class(store.conn, cid, lambda n: draw_codes(pattern, n), count, "generated", clock(),
                                  tick)
        audit.record(store, clock(), actor, "codes.generate", f"class {customer_id}/{class_name}",
                     f"{count} codes, pattern {pattern}")
    return count


def unused_codes_csv(uow: UnitOfWork, clock: Clock, actor: Actor, customer_id: int, class_name: str,
                     ) -> Iterator[str]:
    """The class's unused codes (available and not past their own expiry) in the `codes import` format,
    in dispatch order, a page at a time: memory stays flat however many codes there are.

    The header is ``code``, or ``code,expires_at`` when some of the codes carry their own expiry.  Each
    page is its own short read: codes dispatched while the export runs may or may not be in it.
    """
    now = clock()
    with uow.write() as store:
        cid = _class_id(store.conn, customer_id, class_name)
        with_expiry = q.any_available_with_expiry(store.conn, cid)
        audit.record(store, now, actor, "codes.export", f"class {customer_id}/{class_name}", "unused.csv")

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["code", "expires_at"] if with_expiry else ["code"])
        after = 0
        while True:
            with uow.read() as store:
                page, last, more = q.available_codes_page(store.conn, cid, now, after, EXPORT_PAGE)
            for code, expires_at in page:
                if with_expiry:
                    writer.writerow([code, "" if expires_at is None else expires_at.isoformat() + "Z"])
                else:
                    writer.writerow([code])
            chunk = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if chunk:
                yield chunk
            if not more or last is None:
                return
            after = last

    return rows()
