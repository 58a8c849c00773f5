"""Drive couponsvc with the official Bing Ads REST SDK (pip `msads`, pydantic models) and report what it saw.

Run with the REST SDK's own interpreter (``.venv-rest/bin/python``).  Input is one JSON document
(argv[1], or stdin when absent):

    {"base_url": "http://127.0.0.1:8080",
     "calls": [{"id": "ok", "developer_token": "DEV", "access_token": "AT", "customer_id": 222,
                "account_id": 111,
                "operation": "DispatchCoupons",             # the default; or any Customer Billing operation
                "args": {"SendToEmails": [...] | null, "CustomerId": "222", "CouponClassName": "X"}}]}

``args`` go to the SDK's ``DispatchCouponsRequest`` model as given (keys missing are not set).  For the
other operations ``args`` is the JSON form of the SDK's ``{Operation}Request`` model (read by its
``from_dict``, so nested Predicates, Ordering and PageInfo become the SDK's models), and the call is the
SDK's ``{operation}_with_http_info``; ``"args": null`` calls it with no request object at all.
Output (stdout) is a JSON list with one result per call, in order, each one of:

    {"id", "outcome": "response", "http_status", "http_tracking_id",
     "partial_errors": [{"Code", "Details", "Index", "Message"}], "partial_errors_is_null": bool}
    {"id", "outcome": "response", "http_status", "http_tracking_id", "coupons": [ENTITY, ...]}      # Search
    {"id", "outcome": "response", "http_status", "http_tracking_id", "redemption_date": VALUE}      # Redeem
    {"id", "outcome": "response", "http_status", "http_tracking_id", "coupon_info": [ENTITY, ...]}  # Info
    {"id", "outcome": "response", "http_status", "http_tracking_id", "result": repr}  # other operations
    {"id", "outcome": "fault", "exception": "BadRequestException" | ..., "http_status", "http_tracking_id",
     "kind": "AdApiFaultDetail" | "ApiFault", "tracking_id", "errors": [...]}
    {"id", "outcome": "exception", "type", "message"}

The SDK's own ``ex.data`` is a bare ApplicationFault (its ``openapi_client.models.ApplicationFault`` is
the adinsight model), so a fault is read the way that works for a user of this SDK:
``openapi_client.models.billing.ApplicationFault.from_json(ex.body)``, which dispatches on ``Type`` to
the strict billing models.  Their StrictInt/StrictStr fields make the SDK judge every value's JSON type.
An ENTITY is ``{"fields": [the model's aliases, in model order], "values": {alias: VALUE}}`` and a
VALUE is ``{"type": python type name, "value": JSON-able value}`` (datetimes as ISO text), or an ENTITY
for a nested model (RedemptionInfo), or null.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import warnings
from typing import Any

warnings.simplefilter("ignore")  # the SDK's generated models emit pydantic deprecation warnings on import

from bingads.authorization import (  # noqa: E402
    AuthorizationData,
    OAuthDesktopMobileImplicitGrant,
    OAuthTokens,
)
from bingads.service_client import ServiceClient  # noqa: E402
from openapi_client.exceptions import ApiException  # noqa: E402
from openapi_client.models import billing  # noqa: E402
from openapi_client.models.billing import (  # noqa: E402
    AdApiFaultDetail,
    ApiFault,
    ApplicationFault,
    DispatchCouponsRequest,
)
from pydantic import BaseModel  # noqa: E402


def header(headers: Any, name: str) -> str | None:
    """A response header (urllib3's HTTPHeaderDict is case-insensitive; be explicit for plain dicts)."""
    if headers is None:
        return None
    for key, value in dict(headers).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def read_fault(ex: ApiException) -> dict[str, Any]:
    fault = ApplicationFault.from_json(ex.body)
    out: dict[str, Any] = {"exception": type(ex).__name__, "http_status": ex.status,
                           "http_tracking_id": header(ex.headers, "TrackingId"),
                           "retry_after": header(ex.headers, "Retry-After")}
    if isinstance(fault, AdApiFaultDetail):
        out["kind"] = "AdApiFaultDetail"
        out["errors"] = [
            {"Code": e.code, "Detail": e.detail, "ErrorCode": e.error_code, "Message": e.message}
            for e in fault.errors or [] if e is not None
        ]
    elif isinstance(fault, ApiFault):
        out["kind"] = "ApiFault"
        out["errors"] = [
            {"Code": e.code, "Details": e.details, "Message": e.message}
            for e in fault.operation_errors or [] if e is not None
        ]
    else:
        raise TypeError(f"ApplicationFault body with an unknown Type: {ex.body!r}")
    out["tracking_id"] = fault.tracking_id
    return out


def sdk_call(base_url: str, call: dict[str, Any]) -> dict[str, Any]:
    auth = OAuthDesktopMobileImplicitGrant(
        client_id="couponsvc-tests",
        oauth_tokens=OAuthTokens(access_token=call.get("access_token"), access_token_expires_in_seconds=3600),
    )
    data = AuthorizationData(
        account_id=call.get("account_id", 111), customer_id=call.get("customer_id", 222),
        developer_token=call.get("developer_token"), authentication=auth,
    )
    service = ServiceClient("CustomerBillingService", 13, authorization_data=data, location=base_url)
    operation = call.get("operation", "DispatchCoupons")
    if operation != "DispatchCoupons":
        return other_call(service, operation, call.get("args", {}))
    request = DispatchCouponsRequest(**call.get("args", {}))
    try:
        # The public delegate of the generated API; unlike `dispatch_coupons` it also returns the headers
        # (the SDK's get_response_header() has no last response to read).
        response = service.dispatch_coupons_with_http_info(request)
    except ApiException as ex:
        return {"outcome": "fault", **read_fault(ex)}
    return {
        "outcome": "response",
        "http_status": response.status_code,
        "http_tracking_id": header(response.headers, "TrackingId"),
        "partial_errors": [
            {"Code": e.code, "Details": e.details, "Index": e.index, "Message": e.message}
            for e in response.data.partial_errors or [] if e is not None
        ],
        "partial_errors_is_null": response.data.partial_errors is None,
    }


def typed(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, BaseModel):
        return entity(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return {"type": type(value).__name__, "value": value.isoformat()}
    return {"type": type(value).__name__, "value": value}


def entity(model: BaseModel) -> dict[str, Any]:
    """A response model: its fields by alias (in the model's order), as the strict model typed them."""
    names = [(name, field.alias or name) for name, field in type(model).model_fields.items()]
    return {"fields": [alias for _, alias in names],
            "values": {alias: typed(getattr(model, name)) for name, alias in names}}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def other_call(service: Any, operation: str, args: dict[str, Any] | None) -> dict[str, Any]:
    """Any operation but DispatchCoupons, through the SDK's own request model and API method."""
    request = None if args is None else getattr(billing, f"{operation}Request").from_dict(args)
    try:
        response = getattr(service, f"{snake(operation)}_with_http_info")(request)
    except ApiException as ex:
        return {"outcome": "fault", **read_fault(ex)}
    out: dict[str, Any] = {"outcome": "response", "http_status": response.status_code,
                           "http_tracking_id": header(response.headers, "TrackingId")}
    data = response.data
    if operation == "SearchCoupons":
        out["coupons"] = [typed(c) for c in data.coupons or []]
        out["coupons_is_null"] = data.coupons is None
    elif operation == "RedeemCoupon":
        out["redemption_date"] = typed(data.redemption_date)
    elif operation == "GetCouponInfo":
        out["coupon_info"] = [typed(c) for c in data.coupon_info_data or []]
        out["coupon_info_is_null"] = data.coupon_info_data is None
    elif operation in ("DistributeCoupons", "ClaimFeatureAdoptionCoupons"):
        out["operation_errors"] = [typed(e) for e in data.operation_errors or []]
        out["operation_errors_is_null"] = data.operation_errors is None
        out["partial_errors_lists"] = [[typed(e) for e in item or []] for item in data.partial_errors or []]
        if operation == "ClaimFeatureAdoptionCoupons":
            out["claimed"] = [typed(kv) for kv in data.claimed_date_by_account_id or []]
    elif operation == "CheckFeatureAdoptionCouponEligibility":
        out["eligible"] = [typed(v) for v in data.eligible_account_ids or []]
        out["eligible_is_null"] = data.eligible_account_ids is None
    else:
        out["result"] = repr(data)
    return out


def run(instruction: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for call in instruction["calls"]:
        try:
            result = sdk_call(instruction["base_url"], call)
        except Exception as ex:  # reported, not raised: the test decides whether it was expected
            result = {"outcome": "exception", "type": type(ex).__name__, "message": str(ex)}
        results.append({"id": call.get("id"), **result})
    return results


def main() -> None:
    raw = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    json.dump(run(json.loads(raw)), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
