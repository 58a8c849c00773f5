"""The embedded default transport: a real `couponsvc serve` writes one message per recipient into a Maildir
that Python's `mailbox.Maildir` reads; the CLI shows them sent; a bad COUPONSVC_MAIL_URL stops `serve`."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.restkit import dispatch
from tests.support.seeds import BASE_SEED
from tests.support.server import ServerProcess, free_port

SENDER = "coupons@maildir-test.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server on its own data directory with the default mail URL (a Maildir in the data directory)."""
    proc = ServerProcess(tmp_path_factory.mktemp("maildir-server"), {"COUPONSVC_MAIL_FROM": SENDER})
    assert "COUPONSVC_MAIL_URL" not in proc.env
    proc.load(BASE_SEED, "base")
    proc.start()
    yield proc
    proc.stop()


def maildir_messages(data_dir: Path) -> dict[str, list[EmailMessage]]:
    """{To: [messages]} of the Maildir, read with mailbox.Maildir and parsed with the modern email policy."""
    box = mailbox.Maildir(data_dir / "mail", factory=None, create=False)
    out: dict[str, list[EmailMessage]] = {}
    for key in box.keys():
        assert isinstance(box[key], mailbox.MaildirMessage)
        msg = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        out.setdefault(str(msg["To"]), []).append(msg)
    return out


def db_rows(data_dir: Path, recipients: list[str]) -> dict[str, tuple[str, str, str]]:
    """{recipient: (code, Message-ID, outbox status)} from the server's database."""
    conn = sqlite3.connect(data_dir / "couponsvc.db")
    try:
        rows = conn.execute(
            "SELECT o.recipient, c.code, o.message_id, o.status FROM outbox o JOIN coupons c ON c.id = o.coupon_id "
            f"WHERE o.recipient IN ({','.join('?' * len(recipients))})", recipients).fetchall()
    finally:
        conn.close()
    out = {r[0]: (r[1], r[2], r[3]) for r in rows}
    assert len(out) == len(rows), "one outbox row per recipient"
    return out


def parts(msg: EmailMessage) -> tuple[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def test_dispatch_leaves_one_readable_message_per_recipient(server: ServerProcess) -> None:
    before = maildir_messages(server.data_dir) if (server.data_dir / "mail").exists() else {}
    recipients = [f"reader{i}@example.com" for i in range(5)] + ["Mixed.Case@Example.ORG"]
    r = dispatch(server.url, recipients)
    assert r.status_code == 200, r.text
    assert not r.json().get("PartialErrors")

    # delivered within the call: the Maildir has them as soon as the response is there
    box = maildir_messages(server.data_dir)
    assert sum(len(v) for v in box.values()) == sum(len(v) for v in before.values()) + len(recipients)
    rows = db_rows(server.data_dir, recipients)
    assert sorted(rows) == sorted(recipients)
    codes = set()
    for to in recipients:
        assert len(box.get(to, [])) == 1, (to, sorted(box))
        msg = box[to][0]
        code, message_id, status = rows[to]
        assert status == "sent"
        assert msg["Message-ID"] == message_id
        assert msg["From"] == SENDER
        text, html = parts(msg)
        assert code in text and code in html and code in str(msg["Subject"])
        codes.add(code)
    assert len(codes) == len(recipients)

    # standard layout: delivered files are in new/, nothing left behind in tmp/
    assert not list((server.data_dir / "mail" / "tmp").iterdir())
    assert len(list((server.data_dir / "mail" / "new").iterdir())) >= len(recipients)


def test_mail_status_and_history_show_what_was_delivered(server: ServerProcess) -> None:
    def status() -> dict[str, int]:
        return dict(json.loads(server.cli("mail", "status", "--json").stdout))

    start = status()
    recipients = ["status-a@example.com", "status-b@example.com", "status-c@example.com"]
    r = dispatch(server.url, recipients)
    assert r.status_code == 200, r.text
    after = status()
    assert after["sent"] == start["sent"] + len(recipients)
    assert after["failed"] == start["failed"]
    assert after["queued"] == 0 and after["oldest_queued_seconds"] is None

    rows = db_rows(server.data_dir, recipients)
    box = maildir_messages(server.data_dir)
    for to in recipients:
        lines = server.cli("mail", "history", "--to", to.upper(), "--json").stdout.splitlines()
        assert len(lines) == 1, lines  # one attempt, and it worked
        entry = json.loads(lines[0])
        code, message_id, _ = rows[to]
        assert (entry["recipient"], entry["code"], entry["message_id"]) == (to, code, message_id)
        assert entry["status"] == "sent" and entry["outcome"] == "sent"
        assert box[to][0]["Message-ID"] == entry["message_id"]
        text = server.cli("mail", "history", "--to", to).stdout
        assert message_id in text and code in text and "sent" in text

    by_code = server.cli("mail", "history", "--code", rows[recipients[0]][0], "--json").stdout.splitlines()
    assert [json.loads(x)["recipient"] for x in by_code] == [recipients[0]]
    nobody = server.cli("mail", "history", "--to", "nobody@example.com", check=False)
    assert nobody.returncode == 1 and "no such message" in nobody.stderr


@pytest.mark.parametrize(("url", "words"), [
    ("ftp://x", ["scheme"]),
    ("smtp://mail.example.com", ["host:port"]),
    ("smtps://mail.example.com", ["host:port"]),
    ("smtp://127.0.0.1:notaport", ["port"]),
    ("smtp://127.0.0.1:2525?starttls=true&bogus=1", ["bogus"]),
    ("smtp://user:s3cret-pw@127.0.0.1:2525?pool=9", ["pool"]),
    ("maildir://", ["folder"]),
    ("127.0.0.1:25", ["scheme"]),
])
def test_a_bad_mail_url_stops_serve_naming_the_variable(tmp_path: Path, url: str, words: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUPONSVC_")}
    env.update({"COUPONSVC_DATA_DIR": str(tmp_path), "COUPONSVC_MAIL_URL": url})
    result = subprocess.run([sys.executable, "-m", "couponsvc", "serve", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "COUPONSVC_MAIL_URL" in result.stderr
    assert "Traceback" not in result.stderr
    for w in words:
        assert w in result.stderr, (w, result.stderr)
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "listening" not in result.stdout
