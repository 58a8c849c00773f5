"""`couponsvc codes import --customer ID --class NAME FILE.csv` (SPEC section 7).

The user-facing paths run the real CLI in a subprocess; the reader's finer points and the bulk insert's
chunking are checked in-process.  One import also runs against PostgreSQL when it is reachable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from couponsvc.adapters import admin, csvcodes
from couponsvc.adapters import schema as t
from couponsvc.adapters.csvcodes import CsvError, read_codes_csv
from couponsvc.adapters.db import make_engine
from couponsvc.adapters.migrate import upgrade
from couponsvc.adapters.seed import apply_seed, parse_seed
from couponsvc.domain.codes import NewCodes, generate_codes
from couponsvc.service_layer.unit_of_work import SqlUnitOfWork
from tests.support.cli import Cli
from tests.support.databases import postgres_schema_url

SEED: dict[str, Any] = {
    "customers": [
        {"id": 222, "name": "Contoso", "coupon_classes": [
            {"name": "SPRING-100", "amount": 100.0, "currency_code": "USD", "codes": ["SPR-0001"]},
            {"name": "OTHER", "codes": ["OTH-0001", "OTH-0002"]},
        ]},
        {"id": 333, "name": "Fabrikam", "coupon_classes": [{"name": "FAB", "codes": ["FAB-0001"]}]},
    ],
}
DB_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")  # how SQLAlchemy stores a DateTime in SQLite


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    cli = Cli(tmp_path_factory.mktemp("seeded") / "data")
    cli.load(SEED)
    return cli


@pytest.fixture
def cli(seeded: Cli, tmp_path: Path) -> Cli:
    """A fresh data directory holding SEED."""
    return seeded.clone(tmp_path / "data")


def coupons(cli: Cli, class_name: str = "SPRING-100") -> list[tuple[Any, ...]]:
    """(code, state, origin, expires_at as stored) of a class, in load (= dispatch) order."""
    return cli.query("SELECT code, state, origin, expires_at FROM coupons JOIN coupon_classes k "
                     "ON k.id = coupons.class_id WHERE k.name = ? ORDER BY coupons.id", class_name)


def imported(cli: Cli, name: str = "SPRING-100") -> list[str]:
    return [row[0] for row in coupons(cli, name) if row[2] == "import"]


def import_(cli: Cli, path: Path, class_name: str = "SPRING-100", customer: int = 222) -> Any:
    return cli.run("codes", "import", "--customer", str(customer), "--class", class_name, str(path))


def import_refused(cli: Cli, path: Path, class_name: str = "SPRING-100", customer: int = 222) -> str:
    return cli.refused("codes", "import", "--customer", str(customer), "--class", class_name, str(path))


# --- happy paths ------------------------------------------------------------------------------------
def test_import_with_header_expiry_column_and_blank_lines(cli: Cli) -> None:
    path = cli.write("codes.csv", "code,expires_at\n"
                                  "IMP-0001,2030-06-30T02:00:00+02:00\n"
                                  "IMP-0002\n"
                                  "\n"
                                  "IMP-0003,\n"
                                  '"IMP-0004",2031-01-01\n'
                                  "IMP-0005,2032-03-04T05:06:07Z\n")
    result = import_(cli, path)
    assert "imported 5 codes into SPRING-100 (0 were already there)" in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    rows = coupons(cli)
    assert [r[:3] for r in rows] == [("SPR-0001", "available", "seed")] + [
        (f"IMP-000{i}", "available", "import") for i in range(1, 6)]
    # expiries are stored in UTC, in exactly the form the service itself writes and compares
    assert [r[3] for r in rows[1:]] == ["2030-06-30 00:00:00.000000", None, None, "2031-01-01 00:00:00.000000",
                                        "2032-03-04 05:06:07.000000"]
    created = cli.query("SELECT created_at FROM coupons WHERE origin = 'import'")
    assert all(DB_TIME.fullmatch(c[0]) for c in created)
    with cli.engine() as engine, engine.connect() as conn:
        c = t.coupons.c
        read_back = conn.execute(select(c.code, c.expires_at, c.created_at).where(c.code == "IMP-0005")).one()
    assert read_back.expires_at == datetime(2032, 3, 4, 5, 6, 7)
    now = datetime.now(UTC).replace(tzinfo=None)  # the store keeps naive UTC
    assert abs((now - read_back.created_at).total_seconds()) < 120


def test_import_without_header_with_crlf_and_a_byte_order_mark(cli: Cli) -> None:
    path = cli.write("codes.csv", b"\xef\xbb\xbfB-3\r\nB-1\r\nB-2\r\n")
    import_(cli, path, class_name="spring-100")  # class names ignore case
    assert imported(cli) == ["B-3", "B-1", "B-2"]  # file order is dispatch order


def test_reimport_is_a_no_op_and_an_interrupted_import_can_be_rerun(cli: Cli) -> None:
    first = cli.write("first.csv", "".join(f"R-{i}\n" for i in range(6)))
    import_(cli, first)
    before = cli.snapshot()
    again = import_(cli, first)
    assert "imported 0 codes into SPRING-100 (6 were already there)" in again.stdout
    assert cli.snapshot() == before
    # the same file grown (as after an interrupted or partial run): only the new codes are added, at the end
    grown = cli.write("grown.csv", "".join(f"R-{i}\n" for i in (3, 6, 0, 7)))
    assert "imported 2 codes into SPRING-100 (2 were already there)" in import_(cli, grown).stdout
    assert imported(cli) == [f"R-{i}" for i in range(8)]


def test_codes_of_another_class_refuse_the_whole_file_naming_the_line(cli: Cli) -> None:
    before = cli.snapshot()
    path = cli.write("codes.csv", "code\nNEW-1\nNEW-2\n\nOTH-0002\nNEW-3\nFAB-0001\n")
    err = import_refused(cli, path)
    assert f"{path}:5: code 'OTH-0002' already belongs to another coupon class; nothing was imported" in err
    assert cli.snapshot() == before
    # a code of another customer's class is refused the same way
    err = import_refused(cli, cli.write("fab.csv", "NEW-9\nFAB-0001\n"))
    assert "fab.csv:2: code 'FAB-0001' already belongs to another coupon class" in err
    assert cli.snapshot() == before


@pytest.mark.parametrize(("customer", "class_name"), [(222, "NOPE"), (999, "SPRING-100"), (333, "SPRING-100")])
def test_unknown_class_is_a_clear_error(cli: Cli, customer: int, class_name: str) -> None:
    path = cli.write("codes.csv", "NEW-1\n")
    err = import_refused(cli, path, class_name=class_name, customer=customer)
    assert f"customer {customer} has no coupon class {class_name!r}" in err
    assert "couponsvc load" in err


# --- malformed files: nothing is loaded, FILE:LINE is named -------------------------------------------
@pytest.mark.parametrize(("content", "where", "words"), [
    ("code\nOK-1\nBAD 2\nOK-3\n", ":3: ", "the code has spaces or control characters ('BAD 2')"),
    ("OK-1\nBAD\x072\nOK-3\n", ":2: ", "the code has spaces or control characters ('BAD\\x072')"),
    ("OK-1\nOK-2\nOK-1\n", ":3: ", "code 'OK-1' is repeated (first at line 1)"),
    # a repeat of a code the class already holds: both copies are skipped as "already there" unless checked
    ("\nSPR-0001\nOK-2\nSPR-0001\n", ":4: ", "code 'SPR-0001' is repeated (first at line 2)"),
    ("OK-1\nOK-2,2030-01-01,x\n", ":2: ", "3 columns; expected code[,expires_at]"),
    ("code,expires_at\nOK-1,2030-01-01\nOK-2,31/12/2030\n", ":3: ",
     "expires_at '31/12/2030' is not an ISO-8601 date"),
    (b"OK-1\r\nOK-2\r\nCAF\xc9-3\r\nOK-4\r\n", ":3: ", "is not UTF-8 text"),
    (b"", ": ", "holds no codes"),
    ("code,expires_at\n\n", ": ", "holds no codes"),
])
def test_a_malformed_file_loads_nothing_and_names_file_and_line(
    cli: Cli, content: str | bytes, where: str, words: str,
) -> None:
    before = cli.snapshot()
    path = cli.write("bad.csv", content)
    err = import_refused(cli, path)
    assert f"{path}{where}{words}" in err, err
    assert cli.snapshot() == before


def test_a_missing_file_is_named(cli: Cli) -> None:
    assert "missing.csv: cannot be read" in import_refused(cli, cli.data_dir / "missing.csv")


# --- the reader ---------------------------------------------------------------------------------------
def read(tmp_path: Path, content: str | bytes) -> tuple[list[tuple[str, datetime | None]], dict[str, int]]:
    path = tmp_path / "c.csv"
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    parsed = read_codes_csv(path)
    return parsed.new.rows(), parsed.lines


def test_reader_line_numbers_count_every_physical_line(tmp_path: Path) -> None:
    rows, lines = read(tmp_path, "Code\r\n\r\nA\r\n  \r\nB\nC\rD,2030-01-01\n")
    assert rows == [("A", None), ("B", None), ("C", None), ("D", datetime(2030, 1, 1))]
    assert lines == {"A": 3, "B": 5, "C": 6, "D": 7}
    with pytest.raises(CsvError, match=r"c\.csv:3: the code has spaces or control characters \('X\\nY'\)"):
        read(tmp_path, 'A\n"X\nY"\n')  # a quoted line break: the record ends on line 3


def test_reader_header_is_only_recognised_on_the_first_line(tmp_path: Path) -> None:
    rows, lines = read(tmp_path, "\n\n Code \nA\ncode\n")
    assert rows == [("A", None), ("code", None)] and lines == {"A": 4, "code": 5}
    rows, _ = read(tmp_path, "CODE,Expires_At\nA,2030-01-01T00:00:00Z\n")
    assert rows == [("A", datetime(2030, 1, 1))]
    with pytest.raises(CsvError, match=r"c\.csv:1: the header must be 'code' or 'code,expires_at'"):
        read(tmp_path, "code,expiry\nA\n")


def test_reader_quoted_fields(tmp_path: Path) -> None:
    rows, _ = read(tmp_path, '"A,1"\n"B""2",2030-01-01\n')
    assert rows == [("A,1", None), ('B"2', datetime(2030, 1, 1))]
    with pytest.raises(CsvError, match=r"c\.csv:2: not valid CSV"):
        read(tmp_path, 'A\n"B\n')
    with pytest.raises(CsvError, match=r"c\.csv:2: not valid CSV"):
        read(tmp_path, 'A\n"B"x\n')


def test_reader_fast_and_careful_paths_agree(tmp_path: Path) -> None:
    """Bare codes take a fast path; codes with an expiry column take the careful one: same rules."""
    codes = generate_codes("XXXX-9", 300)
    codes = list(dict.fromkeys(codes))
    bare, _ = read(tmp_path, "\n".join(codes) + "\n")
    with_column, _ = read(tmp_path, "".join(f"{c},\n" for c in codes))
    assert bare == with_column == [(c, None) for c in codes]
    for bad in ("A B", "A\x00B", "x" * 101, "A\u00a0B"):
        for variant in (f"OK\n{bad}\n", f"OK\n{bad},\n"):
            with pytest.raises(CsvError, match=r"c\.csv:2: the code"):
                read(tmp_path, variant)
    for variant in ("OK\nX\nOK\n", "OK\nX,\nOK,\n"):
        with pytest.raises(CsvError, match=r"c\.csv:3: code 'OK' is repeated \(first at line 1\)"):
            read(tmp_path, variant)


# --- the bulk insert, in chunks -------------------------------------------------------------------------
@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    upgrade(engine)
    with SqlUnitOfWork(engine).write() as store:
        apply_seed(store.conn, parse_seed(SEED, "seed"), datetime(2026, 1, 1), "seed")
    try:
        yield engine
    finally:
        engine.dispose()


def _class_id(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(t.coupon_classes.c.id).where(t.coupon_classes.c.name == name)))


def test_insert_codes_across_chunks(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "CHUNK", 3)
    monkeypatch.setattr(admin, "LOOKUP_CHUNK", 2)
    spring = _class_id(engine, "SPRING-100")
    rows = NewCodes(["N1", "SPR-0001", "N2", "N3", "OTH-0001", "N4", "N5", "FAB-0001", "N6"])
    progress: list[int] = []
    with engine.connect() as conn, conn.begin():
        report = admin.insert_codes(conn, spring, rows, "import", datetime(2026, 1, 2), progress.append,
                                    stop_on_conflict=False)
        assert (report.inserted, report.already_in_class, report.conflicts) == (6, 1, ["OTH-0001", "FAB-0001"])
        assert progress == [3, 3, 3]
        conn.rollback()
    with engine.connect() as conn, conn.begin():
        report = admin.insert_codes(conn, spring, rows, "import", datetime(2026, 1, 2), progress.append)
        assert report.conflicts == ["OTH-0001"]  # stops after the chunk with the first conflict
        assert (report.inserted, report.already_in_class) == (4, 1)
        conn.rollback()
    with engine.connect() as conn:
        assert conn.scalar(select(t.coupons.c.code).where(t.coupons.c.code == "N1")) is None


def test_generate_into_class_draws_again_for_collisions(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "CHUNK", 4)
    spring = _class_id(engine, "SPRING-100")
    draws = iter([["SPR-0001", "OTH-0001", "G1", "G1"], ["G2", "FAB-0001"], ["G3"], ["G4"]])
    progress: list[int] = []
    with engine.connect() as conn, conn.begin():
        assert admin.generate_into_class(conn, spring, lambda n: next(draws)[:n], 4, "generated",
                                         datetime(2026, 1, 2), progress.append) == 4
        got = conn.scalars(select(t.coupons.c.code).where(t.coupons.c.origin == "generated")
                           .order_by(t.coupons.c.id)).all()
    assert got == ["G1", "G2", "G3", "G4"]
    assert progress == [1, 1, 1, 1]


def test_generate_into_class_gives_up_when_the_pattern_is_used_up(engine: Engine) -> None:
    spring = _class_id(engine, "SPRING-100")
    with engine.connect() as conn, conn.begin():
        admin.insert_codes(conn, spring, NewCodes([str(d) for d in range(10)]), "import", datetime(2026, 1, 2))
        with pytest.raises(admin.CodeSpaceExhausted, match="pattern"):
            admin.generate_into_class(conn, spring, lambda n: generate_codes("9", n), 1, "generated",
                                      datetime(2026, 1, 2))
        conn.rollback()


# --- PostgreSQL --------------------------------------------------------------------------------------------
PG_URL = os.environ.get("COUPONSVC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url.rsplit("%3D", 1)[1]


def test_import_on_postgresql(tmp_path: Path, pg_schema: str) -> None:
    import psycopg

    cli = Cli(tmp_path / "data", database_url=f"{PG_URL}?options=-csearch_path%3D{pg_schema}")
    cli.load(SEED)
    path = cli.write("codes.csv", "code,expires_at\nPG-1,2030-06-30T02:00:00+02:00\nPG-2\nPG-3\n")
    assert "imported 3 codes" in import_(cli, path).stdout
    assert "imported 0 codes into SPRING-100 (3 were already there)" in import_(cli, path).stdout
    err = import_refused(cli, cli.write("bad.csv", "PG-4\nOTH-0001\n"))
    assert "bad.csv:2: code 'OTH-0001' already belongs to another coupon class" in err
    with psycopg.connect(PG_URL, options=f"-csearch_path={pg_schema}") as conn:
        got = conn.execute("SELECT code, expires_at FROM coupons WHERE origin = 'import' ORDER BY id").fetchall()
    assert got == [("PG-1", datetime(2030, 6, 30)), ("PG-2", None), ("PG-3", None)]


@given(st.lists(st.text(max_size=12), max_size=8))
def test_the_chunk_payload_is_the_codes_as_json(codes: list[str]) -> None:
    """The bulk insert hands SQLite its chunk as JSON; a joined fast form must decode to the same codes."""
    assert json.loads(admin._json_strings(codes)) == codes


_LINE = st.one_of(st.just(""), st.just("code"), st.just("Code"), st.sampled_from(["A", "B", "C-1", "é"]),
                  st.text(alphabet="AB\t\x00 -é\u2028", min_size=1, max_size=3), st.just("x" * 101))


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=8), st.booleans())
def test_the_whole_file_check_agrees_with_the_careful_reader(tmp_path_factory: pytest.TempPathFactory,
                                                             lines: list[str], final_newline: bool) -> None:
    """A plain file is checked as a whole; the verdict, the codes and their lines are the careful reader's."""
    path = tmp_path_factory.mktemp("agree") / "c.csv"
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path.write_text(text, encoding="utf-8", newline="")
    try:
        careful = csvcodes._read_careful(path, text)
    except CsvError as exc:
        with pytest.raises(CsvError) as refused:
            read_codes_csv(path)
        assert str(refused.value) == str(exc)
        return
    parsed = read_codes_csv(path)
    assert (parsed.new.rows(), parsed.lines) == (careful.new.rows(), careful.lines)
