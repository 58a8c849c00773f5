"""Coupon emails: what they state, their headers, per-class templates, escaping and the template sandbox.

Messages are checked the way a mail client sees them: built, serialized to bytes, parsed back.  The
template tests go through the real paths (seed file and `couponsvc mail template`, then a dispatch and
its delivery on a real SQLite database) as well as through the rendering functions directly.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest

from couponsvc.adapters.mail.message import CouponFacts, build_message, check_template, render
from couponsvc.adapters.mail.transports import MemoryTransport
from couponsvc.bootstrap import Container
from couponsvc.domain.errors import ConfigurationError
from couponsvc.service_layer.auth import Credentials
from couponsvc.service_layer.dispatch import DispatchCouponsRequest, dispatch_coupons
from tests.support.cli import Cli
from tests.support.seeds import ALICE, BASE_SEED, CLASS, CUSTOMER, DEV, new_class_seed
from tests.support.service import load, make_container

SENDER = "promotions@shop.example"
AMOUNT = CouponFacts("SAVE-1234", "Spring sale", 100.0, "USD", None, 25.0, 30, datetime(2031, 3, 14, 15, 9))
PERCENT = CouponFacts("PCT-9876", "Percent class", None, None, 15.0, None, None, None)
_tracking = itertools.count(1)


# --- helpers ------------------------------------------------------------------------------------------
def wire(msg: EmailMessage) -> EmailMessage:
    """The message as a mail client gets it: serialized, then parsed back."""
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def build(parts: dict[str, str], *, recipient: str = "someone@example.com",
          message_id: str = "<coupon-1.dispatch-1@shop.example>") -> EmailMessage:
    return wire(build_message(message_id=message_id, sender=SENDER, recipient=recipient, parts=parts,
                              date=datetime(2030, 1, 2, 3, 4, 5)))


def bodies(msg: EmailMessage) -> tuple[str, str]:
    """(text part, HTML part) of a multipart/alternative message; fails unless it is exactly that."""
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, html = (p.get_content() for p in parts)
    assert isinstance(text, str) and isinstance(html, str)
    return text, html


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.tags: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def visible(html: str) -> tuple[str, list[str]]:
    """What a browser shows of an HTML document (entities decoded, whitespace collapsed), and its tags."""
    parser = _Visible()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.chunks).split()), parser.tags


def flat(text: str) -> str:
    return " ".join(text.split())


# --- what a message states ---------------------------------------------------------------------------------
def test_amount_coupon_states_code_value_threshold_duration_and_redeem_by() -> None:
    msg = build(render(None, AMOUNT))
    text, html = bodies(msg)
    shown, _ = visible(html)
    for part in (flat(text), shown):
        assert AMOUNT.code in part
        assert "100.00 USD" in part  # Amount + CurrencyCode
        assert "25.00 USD" in part  # the spend threshold
        assert "30 days" in part  # ActiveDuration: how long it stays usable after redemption
        assert "14 March 2031" in part  # until when it can be redeemed
        assert AMOUNT.class_name in part
    assert AMOUNT.code in str(msg["Subject"])


def test_percent_coupon_states_percent_off_and_leaves_out_what_it_does_not_have() -> None:
    text, html = bodies(build(render(None, PERCENT)))
    shown, _ = visible(html)
    for part in (flat(text), shown):
        assert PERCENT.code in part
        assert "15% off" in part
        assert "USD" not in part and "None" not in part
        assert "days" not in part  # no ActiveDuration
        assert "Redeem it by" not in part  # no end date
        assert "spent" not in part  # no threshold


def test_a_different_coupon_gives_a_different_message() -> None:
    other = CouponFacts("OTHER-5555", "Autumn", 7.5, "EUR", None, 100.0, 7, datetime(2032, 11, 1))
    text, html = bodies(build(render(None, other)))
    shown, _ = visible(html)
    for part in (flat(text), shown):
        assert "OTHER-5555" in part and "7.50 EUR" in part and "100.00 EUR" in part
        assert "7 days" in part and "01 November 2032" in part
        assert AMOUNT.code not in part and "USD" not in part


def test_headers_are_the_given_ones_exactly() -> None:
    msg = build(render(None, AMOUNT), recipient="Mixed.Case+tag@Example.COM",
                message_id="<coupon-42.dispatch-7@shop.example>")
    assert msg["Message-ID"] == "<coupon-42.dispatch-7@shop.example>"
    assert msg["From"] == SENDER
    assert msg["To"] == "Mixed.Case+tag@Example.COM"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime == datetime.fromisoformat("2030-01-02T03:04:05+00:00")
    for name in ("Message-ID", "From", "To", "Subject", "Date"):
        assert len(msg.get_all(name) or []) == 1, name


# --- escaping and header injection -----------------------------------------------------------------------
def test_html_part_escapes_the_code_and_text_part_keeps_it_raw() -> None:
    facts = CouponFacts("<b>&", "<i>Class & Co</i>", 10.0, "USD", None, None, None, None)
    parts = render(None, facts)
    text, html = bodies(build(parts))
    assert "<b>&" in text and "<i>Class & Co</i>" in text
    assert "<b>&" not in html and "<i>" not in html
    assert "&lt;b&gt;&amp;" in html
    shown, tags = visible(html)
    assert "<b>&" in shown and "<i>Class & Co</i>" in shown  # the reader sees the characters ...
    assert "b" not in tags and "i" not in tags  # ... not markup


def test_html_expressions_of_a_class_template_are_escaped_too() -> None:
    # slicing, concatenation and filters turn an escaped value back into a plain string unless the
    # whole block renders with autoescape
    template = "{% block html %}<p>[{{ code[0] }}] [{{ code ~ '!' }}] [{{ code|replace('b', 'i') }}]</p>{% endblock %}"
    check_template(template)
    html = render(template, CouponFacts("<b>&", "C", 1.0, "USD", None, None, None, None))["html"]
    shown, tags = visible(html)
    assert tags == ["p"]
    assert shown == "[<] [<b>&!] [<i>&]"


@pytest.mark.parametrize("subject", [
    "Hi\r\nBcc: victim@attacker.example\r\nX-Injected: yes",
    "Hi\nBcc: victim@attacker.example\n\nbody starts here",
    "Hi\rBcc: victim@attacker.example",
    "Hi\u2028Bcc: victim@attacker.example\x85X-Injected: yes",
    "{{ '\\r\\n' }}Bcc: victim@attacker.example{{ '\\n' }}X-Injected: yes",
])
def test_whatever_a_template_renders_the_subject_stays_one_header(subject: str) -> None:
    template = "{% block subject %}" + subject + " {{ code }}{% endblock %}"
    check_template(template)
    msg = build(render(template, AMOUNT))
    assert msg.get_all("Bcc") is None and msg.get_all("X-Injected") is None
    assert len(msg.get_all("Subject") or []) == 1
    assert "Bcc: victim@attacker.example" in str(msg["Subject"]) and AMOUNT.code in str(msg["Subject"])
    assert [k for k in msg.keys()] == ["Message-ID", "Date", "From", "To", "Subject", "MIME-Version",
                                       "Content-Type"]
    text, _ = bodies(msg)
    assert "body starts here" not in text


def test_a_code_with_line_breaks_cannot_add_headers() -> None:
    facts = CouponFacts("X\r\nBcc: victim@attacker.example", "C", 1.0, "USD", None, None, None, None)
    msg = build(render(None, facts))
    assert msg.get_all("Bcc") is None
    assert len(msg.get_all("Subject") or []) == 1


def test_a_long_subject_is_folded_but_stays_one_header() -> None:
    template = "{% block subject %}{{ code }} " + "très long sujet " * 150 + "{% endblock %}"
    parts = render(template, AMOUNT)
    raw = build_message(message_id="<m@shop.example>", sender=SENDER, recipient="a@example.com", parts=parts,
                        date=datetime(2030, 1, 1)).as_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998  # RFC 5322 line limit
    msg = wire(build_message(message_id="<m@shop.example>", sender=SENDER, recipient="a@example.com",
                             parts=parts, date=datetime(2030, 1, 1)))
    assert len(msg.get_all("Subject") or []) == 1
    assert str(msg["Subject"]) == parts["subject"]


def test_each_serialization_folds_headers_for_its_own_policy() -> None:
    # headers shared between messages (From, Date, MIME-Version, Content-Type) remember their folded form:
    # a message written with LF line ends first must not leave LF-only headers in the next one
    def build_one(i: int) -> EmailMessage:
        return build_message(message_id=f"<m{i}@shop.example>", sender=SENDER, recipient="a@example.com",
                             parts=render(None, AMOUNT), date=datetime(2030, 1, 1))

    lf = build_one(1).as_bytes(policy=email.policy.SMTP.clone(linesep="\n"))
    crlf = build_one(2).as_bytes(policy=email.policy.SMTP)
    unfolded = build_one(3).as_bytes(policy=email.policy.SMTP.clone(max_line_length=0))
    assert b"\r" not in lf
    head = crlf.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b"")
    assert f"From: {SENDER}\r\n".encode() in crlf and b"MIME-Version: 1.0\r\n" in crlf
    assert b"Content-Type: multipart/alternative;\r\n boundary=" in crlf  # folded at 78
    assert b"Content-Type: multipart/alternative; boundary=" in unfolded  # not folded at all


def test_an_address_with_a_line_break_is_refused_by_the_email_library() -> None:
    with pytest.raises(ValueError):
        build_message(message_id="<m@shop.example>", sender=SENDER, recipient="a@example.com\r\nBcc: b@example.com",
                      parts=render(None, AMOUNT), date=datetime(2030, 1, 1))


# --- class templates: overriding blocks, falling back to the default ----------------------------------------
OVERRIDE_SUBJECT = "{% block subject %}Custom subject for {{ code }} ({{ value }}){% endblock %}"
OVERRIDE_TEXT = "{% block text %}Custom text: use {{ code }} before {{ redeem_by }}.{% endblock %}"
OVERRIDE_HTML = "{% block html %}<p class=\"custom\">Custom HTML: <b>{{ code }}</b></p>{% endblock %}"


@pytest.mark.parametrize("blocks", [
    ("subject",), ("text",), ("html",), ("subject", "html"), ("subject", "text", "html"),
])
def test_a_class_template_overrides_its_blocks_and_keeps_the_default_ones(blocks: tuple[str, ...]) -> None:
    source = {"subject": OVERRIDE_SUBJECT, "text": OVERRIDE_TEXT, "html": OVERRIDE_HTML}
    template = "\n".join(source[b] for b in blocks)
    check_template(template)
    custom, default = render(template, AMOUNT), render(None, AMOUNT)
    expected = {
        "subject": f"Custom subject for {AMOUNT.code} (100.00 USD)",
        "text": f"Custom text: use {AMOUNT.code} before 14 March 2031, 15:09 UTC.",
        "html": f'<p class="custom">Custom HTML: <b>{AMOUNT.code}</b></p>',
    }
    for part in ("subject", "text", "html"):
        assert custom[part] == (expected[part] if part in blocks else default[part]), part
        assert custom[part].strip(), part


def test_super_renders_the_default_block() -> None:
    template = "{% block text %}P.S. first!\n{{ super() }}{% endblock %}"
    check_template(template)
    assert render(template, AMOUNT)["text"] == "P.S. first!\n" + render(None, AMOUNT)["text"]


def test_an_explicit_extends_of_the_default_works_like_none() -> None:
    for head in ('{% extends "coupon.j2" %}', "{%- extends 'coupon.j2' -%}"):
        template = head + OVERRIDE_SUBJECT
        check_template(template)
        assert render(template, AMOUNT) == render(OVERRIDE_SUBJECT, AMOUNT)


def test_check_template_accepts_the_documented_variables() -> None:
    check_template("{% block text %}{{ code }} {{ class_name }} {{ value }} {{ threshold }} {{ redeem_by }} "
                   "{{ active_days }}{% endblock %}")


@pytest.mark.parametrize(("template", "line", "words"), [
    ("{% block subject %}{{ ''.__class__.__mro__ }}{% endblock %}", 1, "unsafe"),
    ("{% block subject %}x{% endblock %}\n{% block text %}{{ code }}\n{{ code.__class__ }}{% endblock %}", 3,
     "unsafe"),
    ("{% block text %}{{ code }}{{ ''.__class__.__mro__[1].__subclasses__() }}{% endblock %}", 1, "unsafe"),
    ("{% block text %}{{ code }}{{ cycler.__init__.__globals__ }}{% endblock %}", 1, "unsafe"),
    ("{% block html %}{{ code }}{{ '{0.__class__}'.format(code) }}{% endblock %}", 1, "unsafe"),
    ("{% block text %}{{ code }}\n\n{{ coupon_code }}{% endblock %}", 3, "coupon_code"),
    ("{% block text %}{{ code }}\n{% if %}{% endblock %}", 2, ""),
    ("{% block text %}{{ code }}\n\n\n{{ code }{% endblock %}", 4, ""),
    ("{% block text %}\n{{ code }}\n{% endif %}", 3, ""),
    ('{% extends "mine.j2" %}{% block text %}{{ code }}{% endblock %}', 1, "extend"),
])
def test_check_template_refuses_with_the_line(template: str, line: int, words: str) -> None:
    with pytest.raises(ConfigurationError) as exc:
        check_template(template)
    assert f"line {line}:" in str(exc.value)
    assert words in str(exc.value)


@pytest.mark.parametrize("template", [
    "{% block text %}Hello, your coupon is ready.{% endblock %}",
    "{% block html %}<p>Hello</p>{% endblock %}",
    "{% block html %}{% endblock %}",
])
def test_check_template_refuses_a_template_that_hides_the_code(template: str) -> None:
    with pytest.raises(ConfigurationError, match="does not show the coupon code"):
        check_template(template)


def test_a_stored_template_that_fails_at_send_time_falls_back_to_the_default(
        caplog: pytest.LogCaptureFixture) -> None:
    # the check refuses it (a sample coupon has no ActiveDuration); one stored before the check existed,
    # or written to the database directly, must still not hold the message back
    template = "{% block text %}{{ code }} lasts {{ 60 // active_days }} months{% endblock %}"
    with pytest.raises(ConfigurationError, match="division"):
        check_template(template)
    assert render(template, AMOUNT)["text"] == f"{AMOUNT.code} lasts 2 months"
    with caplog.at_level("ERROR", logger="couponsvc.adapters.mail.message"):
        parts = render(template, PERCENT)  # active_duration None: 60 // 0
        assert render(template, PERCENT) == parts  # a whole batch of such coupons: logged once, not each time
    assert parts == render(None, PERCENT)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "class template" in errors[0].getMessage() and PERCENT.code in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is ZeroDivisionError


# --- through the service: sender, Message-ID, templates from the seed file and from the CLI -----------------
@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Container, MemoryTransport]]:
    c = make_container(tmp_path, BASE_SEED, MAIL_FROM=SENDER)
    transport = MemoryTransport()
    c.transport = transport
    yield c, transport
    c.close()


def dispatch_and_deliver(c: Container, transport: MemoryTransport, emails: list[str],
                         cls: str = CLASS) -> tuple[int, dict[str, EmailMessage]]:
    """DispatchCoupons, then the delivery right after it; returns (dispatch id, {recipient: message})."""
    principal = c.authenticate(Credentials(DEV, ALICE))
    tracking = f"tid-{next(_tracking)}"
    outcome = dispatch_coupons(c.uow, c.clock, c.dispatch_config, principal,
                               DispatchCouponsRequest(list(emails), CUSTOMER, cls), tracking)
    assert outcome.dispatch_id is not None and not outcome.partial_errors
    refused = asyncio.run(c.deliverer().deliver_dispatch(outcome.dispatch_id, tracking, 30))
    assert refused == []
    sent = {o.recipient: wire(o.message) for o in transport.sent if o.recipient in emails}
    assert sorted(sent) == sorted(emails)
    return outcome.dispatch_id, sent


def outbox_rows(c: Container, dispatch_id: int) -> dict[str, tuple[str, str]]:
    """{recipient: (Message-ID, code)} as the database has them."""
    db = c.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT o.recipient, o.message_id, c.code FROM outbox o JOIN coupons c ON c.id = o.coupon_id "
            "WHERE o.dispatch_id = ?", (dispatch_id,)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_delivered_messages_carry_sender_stable_message_id_and_own_code(
        service: tuple[Container, MemoryTransport]) -> None:
    c, transport = service
    emails = ["ann@example.com", "bob@example.org", "cy@example.net"]
    dispatch_id, sent = dispatch_and_deliver(c, transport, emails)
    rows = outbox_rows(c, dispatch_id)
    assert len({code for _, code in rows.values()}) == len(emails)
    for recipient, msg in sent.items():
        message_id, code = rows[recipient]
        assert msg["Message-ID"] == message_id
        assert message_id.startswith("<coupon-") and f".dispatch-{dispatch_id}@shop.example>" in message_id
        assert msg["From"] == SENDER
        assert msg["To"] == recipient
        text, html = bodies(msg)
        assert code in text and code in visible(html)[0]
        for other, (_, other_code) in rows.items():
            if other != recipient:
                assert other_code not in text and other_code not in html
        assert "100.00 USD" in text and "25.00 USD" in text and "30 days" in text and "31 December 2099" in text


class _FlakyTransport(MemoryTransport):
    """Answers TEMPORARY to the first attempt of each message, and keeps every attempted message."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts: list[EmailMessage] = []
        self.seen: set[int] = set()

    async def send(self, batch, deadline=None):  # type: ignore[no-untyped-def]
        from couponsvc.domain.delivery import DeliveryResult, Outcome

        results = []
        for item in batch:
            self.attempts.append(wire(item.message))
            if item.outbox_id in self.seen:
                self.sent.append(item)
                results.append(DeliveryResult(item.outbox_id, Outcome.SENT, 250, "ok"))
            else:
                self.seen.add(item.outbox_id)
                results.append(DeliveryResult(item.outbox_id, Outcome.TEMPORARY, 451, "try later"))
        return results


def test_a_retry_sends_the_same_message_id_date_and_content(tmp_path: Path) -> None:
    c = make_container(tmp_path, BASE_SEED, MAIL_FROM=SENDER, RETRY_FIRST="0")
    transport = _FlakyTransport()
    c.transport = transport
    try:
        principal = c.authenticate(Credentials(DEV, ALICE))
        outcome = dispatch_coupons(c.uow, c.clock, c.dispatch_config, principal,
                                   DispatchCouponsRequest(["ann@example.com"], CUSTOMER, CLASS), "tid-retry")
        assert outcome.dispatch_id is not None
        asyncio.run(c.deliverer().deliver_dispatch(outcome.dispatch_id, "tid-retry", 30))
        assert len(transport.attempts) == 1 and not transport.sent
        assert asyncio.run(c.deliverer().run_once()) == 1
        assert len(transport.attempts) == 2 and len(transport.sent) == 1
    finally:
        c.close()
    first, second = transport.attempts
    for header in ("Message-ID", "Date", "From", "To", "Subject"):
        assert first[header] == second[header], header
    assert bodies(first) == bodies(second)


def test_template_from_the_seed_file_is_used_for_that_class_only(service: tuple[Container, MemoryTransport]) -> None:
    c, transport = service
    name, seed = new_class_seed(3, prefix="TPL", template=OVERRIDE_SUBJECT + OVERRIDE_HTML)
    load(c, seed)
    _, sent = dispatch_and_deliver(c, transport, ["ann@example.com"], name)
    msg = sent["ann@example.com"]
    text, html = bodies(msg)
    assert str(msg["Subject"]).startswith("Custom subject for TPL-CLASS-")
    assert "Custom HTML" in html
    assert "here is your coupon code" in text  # the default text block
    _, sent = dispatch_and_deliver(c, transport, ["ann@example.com"])  # another class: default everywhere
    text, html = bodies(sent["ann@example.com"])
    assert not str(sent["ann@example.com"]["Subject"]).startswith("Custom") and "Custom" not in text + html


def test_template_set_with_the_cli_then_shown_then_reset(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.load(BASE_SEED)
    name, seed = new_class_seed(5, prefix="CLI")
    cli.load(seed, "class.json")
    path = cli.write("mine.j2", OVERRIDE_TEXT + "\n" + OVERRIDE_SUBJECT)
    out = cli.run("mail", "template", "--customer", str(CUSTOMER), "--class", name.lower(), str(path))
    assert name in out.stdout or name.lower() in out.stdout
    shown = cli.run("mail", "template", "--customer", str(CUSTOMER), "--class", name, "--show").stdout
    assert shown.rstrip("\n") == OVERRIDE_TEXT + "\n" + OVERRIDE_SUBJECT

    c = make_container(tmp_path, MAIL_FROM=SENDER)
    transport = MemoryTransport()
    c.transport = transport
    try:
        _, sent = dispatch_and_deliver(c, transport, ["ann@example.com"], name)
        msg = sent["ann@example.com"]
        text, html = bodies(msg)
        assert str(msg["Subject"]).startswith("Custom subject for")
        assert text.startswith("Custom text: use ") and "31 December 2099" not in text
        assert "here is your coupon code" in html  # the default html block

        cli.run("mail", "template", "--customer", str(CUSTOMER), "--class", name, "--reset")
        assert "default" in cli.run("mail", "template", "--customer", str(CUSTOMER), "--class", name,
                                    "--show").stdout
        _, sent = dispatch_and_deliver(c, transport, ["bob@example.com"], name)
        text, _ = bodies(sent["bob@example.com"])
        assert "Custom" not in str(sent["bob@example.com"]["Subject"]) and "here is your coupon code" in text
    finally:
        c.close()


UNSAFE = "{% block subject %}{{ code }}{% endblock %}\n{% block text %}{{ code }}{{ ''.__class__.__mro__ }}" \
         "{% endblock %}"
SYNTAX = "{% block subject %}{{ code }}{% endblock %}\n{% block text %}\n{{ code }}\n{% for x in %}{% endblock %}"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str]:
    cli = Cli(tmp_path_factory.mktemp("templates"))
    cli.load(BASE_SEED)
    name, seed = new_class_seed(2, prefix="REF")
    cli.load(seed, "class.json")
    return cli, name


@pytest.mark.parametrize(("source", "words"), [
    (UNSAFE, ["line 2", "unsafe", "__class__"]),
    (SYNTAX, ["line 4"]),
    ("{% block text %}no code here{% endblock %}", ["coupon code"]),
    ("  \n", ["empty"]),
])
def test_mail_template_refuses_a_bad_file_naming_it(loaded: tuple[Cli, str], source: str, words: list[str]) -> None:
    cli, name = loaded
    path = cli.write("bad.j2", source)
    before = cli.snapshot()
    err = cli.refused("mail", "template", "--customer", str(CUSTOMER), "--class", name, str(path))
    assert str(path) in err
    for w in words:
        assert w in err, (w, err)
    assert cli.snapshot() == before


def test_mail_template_refuses_a_file_that_is_not_utf8(loaded: tuple[Cli, str]) -> None:
    cli, name = loaded
    path = cli.write("latin1.j2", "{% block text %}{{ code }} café{% endblock %}".encode("latin-1"))
    err = cli.refused("mail", "template", "--customer", str(CUSTOMER), "--class", name, str(path))
    assert str(path) in err and "UTF-8" in err


@pytest.mark.parametrize(("source", "words"), [
    (UNSAFE, ["line 2", "unsafe", "__class__"]),
    (SYNTAX, ["line 4"]),
])
def test_seed_load_refuses_a_bad_template_naming_the_key(loaded: tuple[Cli, str], source: str,
                                                         words: list[str]) -> None:
    cli, _ = loaded
    _, seed = new_class_seed(2, prefix="BADSEED", template=source)
    path = cli.write("bad-seed.json", seed)
    before = cli.snapshot()
    err = cli.refused("load", str(path))
    assert str(path) in err
    assert "customers[0].coupon_classes[0].template" in err, err
    for w in words:
        assert w in err, (w, err)
    assert cli.snapshot() == before
    assert json.loads(path.read_text())["customers"][0]["coupon_classes"][0]["template"] == source
