"""Entities as ordered wire fields, rendered by both protocols (so SOAP and REST cannot disagree).

Each field has a schema type: ``long`` values are JSON strings (REST) and text (SOAP); ``int``,
``double``, ``decimal`` and ``bool`` are JSON numbers/booleans; ``dateTime`` is ISO-8601 UTC.  An
``xs:decimal`` has no exponent notation, so SOAP writes it positionally (``0.00001``, never ``1e-05``).
A null field is ``i:nil="true"`` in SOAP when the schema says nillable, otherwise left out; in JSON it
is null.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from couponsvc.domain.coupons import ClaimView, CouponInfo, CouponView, RedemptionView


@dataclass(frozen=True, slots=True)
class W:
    name: str
    kind: str  # string | long | int | double | decimal | bool | dateTime | object
    value: Any
    nillable: bool = True


def iso(dt: datetime) -> str:
    """UTC, with microseconds when there are any: ``2026-11-25T20:58:29.123456Z``."""
    return dt.replace(tzinfo=None).isoformat() + "Z"


def redemption_fields(r: RedemptionView) -> list[W]:
    return [
        W("AccountId", "long", r.account_id, False),
        W("AccountNumber", "string", r.account_number),
        W("SpendToThreshold", "double", r.spend_to_threshold, False),
        W("Balance", "double", r.balance, False),
        W("CurrencyCode", "string", r.currency_code),
        W("RedemptionDate", "dateTime", r.redemption_date, False),
        W("ExpirationDate", "dateTime", r.expiration_date, False),
        W("ActivationDate", "dateTime", r.activation_date),
    ]


def claim_fields(c: ClaimView) -> list[W]:
    return [
        W("AccountId", "long", c.account_id, False),
        W("AccountNumber", "string", c.account_number),
        W("ClaimDate", "dateTime", c.claim_date, False),
    ]


def coupon_fields(v: CouponView) -> list[W]:
    """ClaimInfo only where the view has one (SearchCoupons keeps it only when ReturnAdditionalFields asks
    for CouponClaimInfo): a null ClaimInfo is left out, as the vendor's EmitDefaultValue=false says."""
    claim = None if v.claim is None else claim_fields(v.claim)
    return [
        W("CouponCode", "string", v.code),
        W("ClassName", "string", v.class_name),
        W("CouponType", "string", v.coupon_type),
        W("Amount", "double", v.amount, False),
        W("SpendThreshold", "double", v.spend_threshold, False),
        W("CurrencyCode", "string", v.currency_code),
        W("PercentOff", "double", v.percent_off),
        W("ActiveDuration", "int", v.active_duration),
        W("ExpirationDate", "dateTime", v.expiration_date),
        W("StartDate", "dateTime", v.start_date),
        W("EndDate", "dateTime", v.end_date),
        W("SendToEmail", "string", v.send_to_email),
        W("SendToDate", "dateTime", v.send_to_date),
        W("IsRedeemed", "bool", v.is_redeemed, False),
        W("RedemptionInfo", "object", None if v.redemption is None else redemption_fields(v.redemption)),
        *([W("ClaimInfo", "object", claim, False)] if claim is not None else []),
    ]


def coupon_info_fields(i: CouponInfo) -> list[W]:
    return [
        W("AccountId", "int", i.account_id, False),
        W("CouponId", "int", i.coupon_id),
        W("ClaimDate", "dateTime", i.claim_date),
        W("Status", "int", i.status),
        W("RedemptionDate", "dateTime", i.redemption_date),
        W("ExpirationDate", "dateTime", i.expiration_date),
        W("PercentOff", "double", i.percent_off),
        W("CouponValue", "decimal", i.coupon_value),
        W("UpfrontSpending", "decimal", None),
        W("ActiveDuration", "int", i.active_duration),
        W("SpendToThreshold", "decimal", i.spend_to_threshold),
        W("StartDate", "dateTime", i.start_date),
        W("EndDate", "dateTime", i.end_date),
        W("Balance", "decimal", i.balance),
        W("CurrencyCode", "string", i.currency_code),
        W("FeatureId", "int", i.feature_id),
        W("CouponType", "int", None),
    ]


def json_value(f: W) -> Any:
    if f.value is None:
        return None
    if f.kind == "long":
        return str(f.value)
    if f.kind in ("double", "decimal"):
        return float(f.value)
    if f.kind == "int":
        return int(f.value)
    if f.kind == "bool":
        return bool(f.value)
    if f.kind == "dateTime":
        return iso(f.value)
    if f.kind == "object":
        return to_json(f.value)
    return str(f.value)


def to_json(fields: Sequence[W]) -> dict[str, Any]:
    return {f.name: json_value(f) for f in fields}


def xml_text(f: W) -> str:
    """The XML text of a non-null simple field."""
    if f.kind == "double":
        return repr(float(f.value))
    if f.kind == "decimal":
        return format(Decimal(repr(float(f.value))), "f")
    if f.kind == "bool":
        return "true" if f.value else "false"
    if f.kind == "dateTime":
        return iso(f.value)
    return str(f.value)
