"""Prepared coupon emails (adapters/mail/prepared.py) are exactly what the email library builds.

For any code, recipient, Message-ID, class facts and template, ``coupon_email`` must give the bytes of
``build_message(render(...)).as_bytes()`` -- header for header, part for part -- whether it took the fast path
(the class's message built once, the values substituted into its bytes) or fell back to the library.
"""

from __future__ import annotations

import email
import email.policy
import string
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from couponsvc.adapters.mail.message import DISTRIBUTION_TEMPLATE, CouponFacts, build_message, check_template, render
from couponsvc.adapters.mail.prepared import WireMessage, code_is_plain_output, coupon_email
from couponsvc.domain.codes import generate_codes
from couponsvc.domain.emails import is_valid_address

SENDER = "coupons@shop.example"
DATE = datetime(2031, 5, 6, 7, 8, 9)

# class templates a customer might store (each passes check_template), with the code in various places
TEMPLATES: list[str | None] = [
    None,
    "{% block subject %}Code {{ code }} for {{ class_name }}{% endblock %}",
    "{% block subject %}{{ code }}{% endblock %}{% block text %}{{ code }}\n{{ code }} again: {{ code }}\n"
    "{% endblock %}",
    "{% block text %}A long line that leaves little room for the code on it, about sixty: {{ code }}\n"
    "{{ super() }}{% endblock %}",
    "{% block subject %}Gutschein {{ code }} für Sie — {{ value }}{% endblock %}"
    "{% block text %}Grüße! Ihr Code: {{ code }}\n{% endblock %}",
    "{% block html %}<p title=\"{{ code }}\">{{ code }}</p><p>{{ class_name }}</p>{% endblock %}",
    # the code through a filter or a test: the output may depend on it otherwise, so the library path
    "{% block subject %}Code {{ code|lower }}{% endblock %}",
    "{% block text %}{% if code|length > 12 %}long {% endif %}{{ code }}\n{% endblock %}",
    "{% block subject %}Your coupon, {{ class_name }}, is here{% endblock %}",
]

_LDH = string.ascii_letters + string.digits
_ATEXT = _LDH + "!#$%&'*+/=?^_`{|}~-"


@st.composite
def addresses(draw: st.DrawFn) -> str:
    atoms = draw(st.lists(st.text(_ATEXT, min_size=1, max_size=12), min_size=1, max_size=4))
    local = ".".join(atoms)[:64]
    labels = draw(st.lists(st.text(_LDH, min_size=1, max_size=20), min_size=1, max_size=4))
    tld = draw(st.text(string.ascii_lowercase, min_size=2, max_size=6))
    address = f"{local}@{'.'.join(labels)}.{tld}"
    return address if is_valid_address(address) else "plain@example.com"


codes = st.one_of(
    st.builds(lambda: generate_codes("XXXX-XXXX-XXXX", 1)[0]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=100),
    st.text(_LDH + "-_.", min_size=30, max_size=100),  # long codes: lines near the 78-character limit
    st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc", "Cf", "Zl", "Zp", "Co", "Cn")),
            min_size=1, max_size=40),
)
facts_parts = st.tuples(
    st.sampled_from(["Spring sale", "Été 2031 — clients fidèles", "x" * 90, "<b>&amp;</b>"]),
    st.sampled_from([(10.0, "USD", None), (None, None, 15.0), (1234567.5, "EUR", None), (None, None, None)]),
    st.sampled_from([None, 25.0]),
    st.sampled_from([None, 0, 30]),
    st.sampled_from([None, datetime(2031, 12, 31, 23, 59)]),
)
message_ids = st.builds(
    lambda a, b, domain: f"<coupon-{a}.dispatch-{b}@{domain}>",
    st.integers(1, 2**63 - 1), st.integers(1, 2**63 - 1),
    st.sampled_from(["shop.example", "mail." + "d" * 60 + ".example"]),
)


def library(template: str | None, facts: CouponFacts, message_id: str, recipient: str) -> bytes:
    return build_message(message_id=message_id, sender=SENDER, recipient=recipient, parts=render(template, facts),
                         date=DATE).as_bytes()


def parsed(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def assert_same_email(got: bytes, want: bytes) -> None:
    a, b = parsed(got), parsed(want)
    assert [(k, str(v)) for k, v in a.items()] == [(k, str(v)) for k, v in b.items()]
    a_parts, b_parts = list(a.walk()), list(b.walk())
    assert len(a_parts) == len(b_parts)
    for x, y in zip(a_parts, b_parts, strict=True):
        assert [(k, str(v)) for k, v in x.items()] == [(k, str(v)) for k, v in y.items()]
        if not x.is_multipart():
            assert x.get_content() == y.get_content()
    assert got == want


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t is not None])
def test_the_class_templates_are_valid(template: str) -> None:
    check_template(template)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=st.sampled_from(TEMPLATES), code=codes, recipient=addresses(), message_id=message_ids,
       facts=facts_parts)
@example(template=None, code="SAVE-1234", recipient="ada@example.com",
         message_id="<coupon-1.dispatch-1@shop.example>", facts=("Spring sale", (10.0, "USD", None), 25.0, 30, None))
def test_prepared_bytes_equal_what_the_email_library_builds(
        template: str | None, code: str, recipient: str, message_id: str, facts: tuple[Any, ...]) -> None:
    class_name, (amount, currency, percent), threshold, active, redeem_by = facts
    f = CouponFacts(code, class_name, amount, currency, percent, threshold, active, redeem_by)
    msg, raw = coupon_email(template=template, facts=f, message_id=message_id, sender=SENDER, recipient=recipient,
                            date=DATE)
    assert_same_email(raw, library(template, f, message_id, recipient))
    assert msg.as_bytes() == raw
    assert str(msg["To"]) == str(parsed(raw)["To"])


def test_the_fast_path_is_taken_for_usual_coupons_and_the_message_reads_as_usual() -> None:
    f = CouponFacts("SAVE-1234", "Spring sale", 10.0, "USD", None, 25.0, 30, datetime(2031, 12, 31))
    msg, raw = coupon_email(template=None, facts=f, message_id="<coupon-7.dispatch-3@shop.example>", sender=SENDER,
                            recipient="Ada.Lovelace@example.com", date=DATE)
    assert isinstance(msg, WireMessage)
    assert raw == library(None, f, "<coupon-7.dispatch-3@shop.example>", "Ada.Lovelace@example.com")
    assert msg["Message-ID"] == "<coupon-7.dispatch-3@shop.example>"
    assert msg["To"].addresses[0].addr_spec == "Ada.Lovelace@example.com"
    assert msg["Subject"] == "Your coupon SAVE-1234 — 10.00 USD"
    text, html = (p.get_content() for p in msg.iter_parts())
    assert "SAVE-1234" in text and "SAVE-1234" in html


@pytest.mark.parametrize("template", TEMPLATES[:4])
@pytest.mark.parametrize("code", ["A&B<C>\"D'", "=?utf-8?q?x?=", "CODE-\u00e9", *("Z" * n for n in range(1, 101))])
def test_codes_that_change_the_encoding_or_escaping_still_give_the_library_bytes(template: str | None,
                                                                                 code: str) -> None:
    f = CouponFacts(code, "Spring sale", 10.0, "USD", None, None, None, None)
    msg, raw = coupon_email(template=template, facts=f, message_id="<coupon-1.dispatch-1@shop.example>", sender=SENDER,
                            recipient="ada@example.com", date=DATE)
    assert_same_email(raw, library(template, f, "<coupon-1.dispatch-1@shop.example>", "ada@example.com"))


@pytest.mark.parametrize("message_id", ["<broken@x>\r\nBcc: all@example.com", "<a@b>\nX: y", "no-angles@x",
                                        "<" + "m" * 80 + "@x.example>"])
def test_odd_message_ids_behave_as_with_the_library(message_id: str) -> None:
    f = CouponFacts("SAVE-1", "Spring sale", 10.0, "USD", None, None, None, None)
    got = outcome(lambda: coupon_email(template=None, facts=f, message_id=message_id, sender=SENDER,
                                       recipient="ada@example.com", date=DATE)[1])
    assert got == outcome(lambda: library(None, f, message_id, "ada@example.com"))
    assert not isinstance(got, bytes) or b"Bcc" not in got


def test_nothing_can_be_injected_into_the_headers() -> None:
    f = CouponFacts("X\r\nBcc: victim@example.com", "Spring sale", 10.0, "USD", None, None, None, None)
    _, raw = coupon_email(template=None, facts=f, message_id="<coupon-1.dispatch-1@shop.example>", sender=SENDER,
                          recipient="ada@example.com", date=DATE)
    assert parsed(raw)["Bcc"] is None
    assert raw == library(None, f, "<coupon-1.dispatch-1@shop.example>", "ada@example.com")
    with pytest.raises(ValueError):
        coupon_email(template=None, facts=f, message_id="<coupon-1.dispatch-1@shop.example>", sender=SENDER,
                     recipient="ada@example.com\r\nBcc: victim@example.com", date=DATE)


def test_only_plain_uses_of_the_code_qualify_for_the_fast_path() -> None:
    assert code_is_plain_output(None)
    assert code_is_plain_output("{% block subject %}{{ code }} {{ super() }}{% endblock %}")
    assert not code_is_plain_output("{% block subject %}{{ code|upper }}{% endblock %}")
    assert not code_is_plain_output("{% block text %}{% if code == 'VIP' %}vip{% endif %}{{ code }}{% endblock %}")
    assert not code_is_plain_output("{% block text %}{% set c = code %}{{ c }}{% endblock %}")


def outcome(fn: Any) -> bytes | str:
    try:
        return bytes(fn())
    except Exception as exc:  # noqa: BLE001 - the outcome compared is "raised this"
        return type(exc).__name__


@pytest.mark.parametrize("recipient", ["=?utf-8?q?x?=@example.com", "a=?utf-8?q?x?=b@example.com", "a=?b@ex.com",
                                       "o'neil+{x}|y~z@ex.com", "u" * 64 + "@" + "d" * 60 + ".example"])
def test_addresses_the_header_parser_reads_specially_behave_as_with_the_library(recipient: str) -> None:
    f = CouponFacts("SAVE-1", "Spring sale", 10.0, "USD", None, None, None, None)
    got = outcome(lambda: coupon_email(template=None, facts=f, message_id="<coupon-1.dispatch-1@shop.example>",
                                       sender=SENDER, recipient=recipient, date=DATE)[1])
    assert got == outcome(lambda: library(None, f, "<coupon-1.dispatch-1@shop.example>", recipient))


@settings(max_examples=100, deadline=None)
@given(code=codes, recipient=addresses(), account=st.sampled_from([None, "F111AAAA", "X" * 70]))
def test_distribution_emails_equal_what_the_email_library_builds(code: str, recipient: str,
                                                                  account: str | None) -> None:
    f = CouponFacts(code, "Spring sale", 10.0, "USD", None, 25.0, 30, None, account)
    mid = "<coupon-3.dispatch-4@shop.example>"
    msg, raw = coupon_email(template=None, facts=f, message_id=mid, sender=SENDER, recipient=recipient, date=DATE,
                            base=DISTRIBUTION_TEMPLATE)
    want = build_message(message_id=mid, sender=SENDER, recipient=recipient,
                         parts=render(None, f, DISTRIBUTION_TEMPLATE), date=DATE).as_bytes()
    assert_same_email(raw, want)
