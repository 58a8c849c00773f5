"""Allocation rules and per-address checks (pure domain functions)."""

from __future__ import annotations

from datetime import datetime

import pytest

from couponsvc.domain.emails import address_key, is_valid_address, printable, trim
from couponsvc.domain.errors import CATALOGUE, BatchError, Err, FaultKind, ServiceFault
from couponsvc.domain.model import CouponClass, CouponRef, plan_allocation, screen_addresses
from couponsvc.domain.values import parse_long, positive_long_or_none


@pytest.mark.parametrize("address", [
    "ada@example.com", "a.b+tag@sub.example.co.uk", "o'brien@example.ie", "x@xn--bcher-kva.example",
    "UPPER@EXAMPLE.COM", "a" * 64 + "@example.com",
])
def test_valid_addresses(address: str) -> None:
    assert is_valid_address(address)


@pytest.mark.parametrize("address", [
    "", "plain", "@example.com", "a@", "a@example", "a@@example.com", "a..b@example.com", ".a@example.com",
    "a.@example.com", "a b@example.com", "a@exa mple.com", "a@example.com\r\nBcc: x@example.com",
    "a@example.com\n", "a\t@example.com", "a@-example.com", "a@example-.com", "a@example.123",
    "a" * 65 + "@example.com", "a@" + "b" * 250 + ".com", "ädä@example.com", "a@exämple.com",
    "\x00a@example.com",
])
def test_invalid_addresses(address: str) -> None:
    assert not is_valid_address(trim(address))


def test_trim_removes_spaces_only() -> None:
    assert trim("  ada@example.com ") == "ada@example.com"
    assert trim("ada@example.com\r\n") == "ada@example.com\r\n"
    assert address_key(" Ada@Example.COM ") == "ada@example.com"


def test_printable_escapes_control_characters() -> None:
    assert printable("a\r\nb\x00") == "a\\x0d\\x0ab\\x00"
    assert printable("x" * 300, 10) == "x" * 10 + "…"


def test_screen_reports_invalid_then_duplicates_in_request_order() -> None:
    candidates, errors = screen_addresses(
        ["a@example.com", None, "bad", " A@EXAMPLE.com ", "b@example.com", "b@example.com", "bad"]
    )
    assert [(c.index, c.address, c.key) for c in candidates] == [
        (0, "a@example.com", "a@example.com"), (4, "b@example.com", "b@example.com"),
    ]
    assert [(e.index, e.code) for e in errors] == [(1, 3001), (2, 3001), (3, 3002), (5, 3002), (6, 3001)]
    assert errors[2].details == "A@EXAMPLE.com"


def test_plan_gives_oldest_coupons_in_request_order_and_reports_sent_and_empty_pool() -> None:
    candidates, _ = screen_addresses(["a@x.com", "b@x.com", "c@x.com", "d@x.com"])
    pool = [CouponRef(10, "C10"), CouponRef(11, "C11")]
    allocations, errors = plan_allocation(candidates, {"b@x.com"}, pool)
    assert [(a.candidate.index, a.coupon.id) for a in allocations] == [(0, 10), (2, 11)]
    assert [(e.index, e.code, e.error_code) for e in errors] == [
        (1, 3003, "CouponAlreadySentToEmail"), (3, 3004, "NoCouponAvailable"),
    ]


def test_class_expires_at_end_or_expiration_date() -> None:
    def cls(end: datetime | None, exp: datetime | None) -> CouponClass:
        return CouponClass(1, 1, "C", None, None, None, None, None, None, None, end, exp)

    now = datetime(2026, 6, 1)
    assert not cls(None, None).is_expired(now)
    assert not cls(datetime(2026, 6, 1), datetime(2027, 1, 1)).is_expired(now)
    assert cls(datetime(2026, 5, 31), None).is_expired(now)
    assert cls(None, datetime(2026, 5, 31, 23, 59)).is_expired(now)


@pytest.mark.parametrize("raw, expected", [("222", 222), (" 222 ", 222), (222, 222), ("+5", 5), ("-3", -3),
                                           (None, None), (str(2**63 - 1), 2**63 - 1)])
def test_parse_long_accepts(raw: str | int | None, expected: int | None) -> None:
    assert parse_long(raw, "CustomerId") == expected


@pytest.mark.parametrize("raw", ["", "abc", "1.5", "1e3", True, str(2**63), "٣"])
def test_parse_long_refuses_with_201_naming_the_field(raw: str | int) -> None:
    with pytest.raises(ServiceFault) as exc:
        parse_long(raw, "CustomerId")
    assert exc.value.error.code == 201 and "CustomerId" in (exc.value.details or "")


def test_positive_long_or_none() -> None:
    assert positive_long_or_none("7") == 7
    assert positive_long_or_none("0") is None
    assert positive_long_or_none("x") is None


def test_catalogue_matches_the_spec_table() -> None:
    expected = {
        0: ("InternalError", FaultKind.AD_API, 500), 100: ("NullRequest", FaultKind.API, 400),
        105: ("InvalidCredentials", FaultKind.AD_API, 401), 106: ("UserIsNotAuthorized", FaultKind.AD_API, 403),
        109: ("AuthenticationTokenExpired", FaultKind.AD_API, 401),
        116: ("RequestMissingHeaders", FaultKind.AD_API, 401), 117: ("CallRateExceeded", FaultKind.AD_API, 429),
        201: ("ApiInputValidationError", FaultKind.API, 400), 203: ("NullParameter", FaultKind.API, 400),
        204: ("OperationNotSupported", FaultKind.API, 400), 206: ("NullArrayArgument", FaultKind.API, 400),
        208: ("InvalidAccount", FaultKind.API, 400), 4603: ("CountExceedsLimit", FaultKind.API, 400),
        3000: ("CouponClassNotFound", FaultKind.API, 400), 3001: ("InvalidEmailAddress", FaultKind.BATCH, None),
        3002: ("DuplicateEmailInRequest", FaultKind.BATCH, None),
        3003: ("CouponAlreadySentToEmail", FaultKind.BATCH, None),
        3004: ("NoCouponAvailable", FaultKind.BATCH, None), 3005: ("EmailDeliveryFailed", FaultKind.BATCH, None),
        3006: ("CouponCodeNotFound", FaultKind.API, 400), 3007: ("CouponAlreadyRedeemed", FaultKind.API, 400),
        3008: ("CouponExpired", FaultKind.API, 400), 3009: ("CouponNotYetActive", FaultKind.API, 400),
        3010: ("CouponCurrencyMismatch", FaultKind.API, 400), 3011: ("CouponClassExpired", FaultKind.API, 400),
        3012: ("CouponAlreadyDistributedToAccount", FaultKind.OPERATION, None),
    }
    assert {int(k): (d.error_code, d.kind, d.http_status) for k, d in CATALOGUE.items()} == expected


def test_batch_errors_cannot_be_raised_as_faults() -> None:
    with pytest.raises(ValueError):
        ServiceFault(Err.NO_COUPON_AVAILABLE)
    with pytest.raises(ValueError):
        ServiceFault(Err.COUPON_ALREADY_DISTRIBUTED_TO_ACCOUNT)
    assert BatchError.of(Err.NO_COUPON_AVAILABLE, 4).error_code == "NoCouponAvailable"


def test_docs_show_the_catalogue_of_the_code() -> None:
    from pathlib import Path

    from couponsvc.domain.errors import catalogue_markdown

    doc = (Path(__file__).resolve().parent.parent / "docs" / "error-catalogue.md").read_text()
    assert catalogue_markdown() in doc, "regenerate docs/error-catalogue.md with `couponsvc errors`"
