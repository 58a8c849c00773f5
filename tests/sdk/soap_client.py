"""Drive couponsvc with the official Bing Ads SOAP SDK (pip `bingads`, suds) and report what the SDK saw.

Run with the SOAP SDK's own interpreter (``.venv-soap/bin/python``), not the project's: both official
SDKs install a module named ``bingads``.  Input is one JSON document (argv[1], or stdin when absent):

    {"base_url": "http://127.0.0.1:8080",
     "calls": [{"id": "ok", "developer_token": "DEV", "access_token": "AT", "customer_id": 222,
                "account_id": 111, "auth": "implicit" | "implicit-no-refresh" | "refreshable",
                "fresh_access_token": "AT2",               # "refreshable" only
                "client": "sdk" | "suds-wsdl",              # suds-wsdl: plain suds on the server's ?wsdl
                "operation": "DispatchCoupons",             # the default; or any Customer Billing operation
                "args": {"SendToEmails": [...] | null, "CustomerId": 222, "CouponClassName": "X"}}]}

Keys missing from ``args`` are not passed to the SDK at all.  The other operations take their request's
fields as ``args`` too: SearchCoupons ``{"Predicates": [{"Field", "Operator", "Value"}] | null,
"Ordering": [{"Field", "Order"}] | null, "PageInfo": {"Index", "Size"} | null}`` (lists become the
schema's ArrayOfPredicate / ArrayOfOrderBy objects), RedeemCoupon ``{"AccountId", "CouponCode"}``,
GetCouponInfo ``{"CustomerId"}``; any other operation gets ``args`` as suds keyword arguments.
Output (stdout) is a JSON list with one result per call, in order, each one of:

    {"id", "outcome": "response", "partial_errors": [{"Code", "Details", "Index", "Message"}],
     "header_tracking_id", "http_status", "http_tracking_id", "refreshes": [...]}
    {"id", "outcome": "response", "coupons": [ENTITY, ...], ...}          # SearchCoupons
    {"id", "outcome": "response", "redemption_date": VALUE, ...}          # RedeemCoupon
    {"id", "outcome": "response", "coupon_info": [ENTITY, ...], ...}      # GetCouponInfo
    {"id", "outcome": "response", "result": repr, ...}                    # any other operation
    {"id", "outcome": "fault", "kind": "AdApiFaultDetail" | "ApiFault", "faultcode", "faultstring",
     "tracking_id", "errors": [...], "header_tracking_id", "http_status", "http_tracking_id", "refreshes"}
    {"id", "outcome": "exception", "type", "message", "refreshes"}

Values are reported as the SDK typed them (suds types a response by the SDK's bundled WSDL, so a
BatchError Code is an int; fault details are untyped strings, which is what the SDK itself compares).
An ENTITY is ``{"fields": [names in the order suds holds them], "values": {name: VALUE}}`` and a VALUE
is ``{"type": python type name, "value": JSON-able value}`` (datetimes as ISO text, Decimals as text),
or an ENTITY for a nested object (RedemptionInfo), or null for a nil element.
"""

from __future__ import annotations

import datetime
import decimal
import json
import sys
from typing import Any

from bingads.authorization import (
    AuthorizationData,
    OAuthDesktopMobileAuthCodeGrant,
    OAuthDesktopMobileImplicitGrant,
    OAuthTokens,
)
from bingads.service_client import ServiceClient
from suds import WebFault
from suds.client import Client
from suds.sudsobject import Object
from suds.transport import TransportError
from suds.transport.https import HttpAuthenticated

SOAP_PATH = "/Api/Billing/v13/CustomerBillingService.svc"
ARRAYS_NS = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
ENTITIES_NS = "https://bingads.microsoft.com/Customer/v13/Entities"


class RecordingTransport(HttpAuthenticated):
    """suds' default transport, remembering the HTTP status and TrackingId header of the last reply."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_status: int | None = None
        self.last_tracking_id: str | None = None

    def send(self, request: Any) -> Any:
        self.last_status = self.last_tracking_id = None
        try:
            reply = super().send(request)
        except TransportError as exc:
            self.last_status = exc.httpcode
            headers = getattr(exc.fp, "headers", None)
            self.last_tracking_id = headers.get("TrackingId") if headers is not None else None
            raise
        if reply is not None:
            self.last_status = reply.code
            self.last_tracking_id = reply.headers.get("TrackingId")
        return reply


class SimulatedRefreshGrant(OAuthDesktopMobileAuthCodeGrant):
    """An auth-code grant whose refresh answers locally instead of calling the Microsoft identity platform.

    Everything else (when the SDK decides to refresh, how it retries) is the SDK's own logic.
    """

    def __init__(self, client_id: str, oauth_tokens: OAuthTokens, fresh_access_token: str) -> None:
        super().__init__(client_id, oauth_tokens=oauth_tokens)
        self.fresh_access_token = fresh_access_token
        self.refreshes: list[str | None] = []

    def request_oauth_tokens_by_refresh_token(self, refresh_token: str) -> OAuthTokens:
        self.refreshes.append(refresh_token)
        self._oauth_tokens = OAuthTokens(
            access_token=self.fresh_access_token, access_token_expires_in_seconds=3600,
            refresh_token=f"{refresh_token}-next",
        )
        return self._oauth_tokens


def as_list(value: Any) -> list[Any]:
    """suds gives a single array item as an object and several as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def plain(value: Any) -> Any:
    """suds Text is a str subclass: make it a plain str (None stays None) so JSON keeps its type."""
    return str(value) if isinstance(value, str) else value


def batch_errors(result: Any) -> list[dict[str, Any]]:
    """The PartialErrors the SDK returned: an ArrayOfBatchError object, or empty text for an empty element."""
    if result is None or (isinstance(result, str) and not result.strip()):
        return []
    if not hasattr(result, "BatchError"):
        raise TypeError(f"unexpected DispatchCoupons result {result!r}")
    return [
        {"Code": plain(e.Code), "Details": plain(e.Details), "Index": plain(e.Index), "Message": plain(e.Message)}
        for e in as_list(result.BatchError)
    ]


def read_fault(ex: WebFault) -> dict[str, Any]:
    """The fault as an SDK user reads it: ex.fault.detail.AdApiFaultDetail / ex.fault.detail.ApiFault."""
    fault = ex.fault
    detail = fault.detail
    out: dict[str, Any] = {"faultcode": plain(fault.faultcode), "faultstring": plain(fault.faultstring)}
    if hasattr(detail, "AdApiFaultDetail"):
        node = detail.AdApiFaultDetail
        out["kind"] = "AdApiFaultDetail"
        out["errors"] = [
            {"Code": plain(e.Code), "Detail": plain(e.Detail), "ErrorCode": plain(e.ErrorCode),
             "Message": plain(e.Message)}
            for e in as_list(node.Errors.AdApiError)
        ]
    elif hasattr(detail, "ApiFault"):
        node = detail.ApiFault
        out["kind"] = "ApiFault"
        out["errors"] = [
            {"Code": plain(e.Code), "Details": plain(e.Details), "Message": plain(e.Message)}
            for e in as_list(node.OperationErrors.OperationError)
        ]
    else:
        raise TypeError(f"fault detail holds neither AdApiFaultDetail nor ApiFault: {detail!r}")
    out["tracking_id"] = plain(node.TrackingId)
    return out


def authentication(call: dict[str, Any]) -> Any:
    tokens = OAuthTokens(access_token=call.get("access_token"), access_token_expires_in_seconds=3600,
                         refresh_token="refresh-token-1")
    if call.get("auth", "implicit") == "refreshable":
        return SimulatedRefreshGrant("couponsvc-tests", tokens, call["fresh_access_token"])
    return OAuthDesktopMobileImplicitGrant(client_id="couponsvc-tests", oauth_tokens=tokens)


def typed(value: Any) -> Any:
    """A value as suds typed it: its Python type name and a JSON-able rendering; nested objects recursively."""
    if value is None:
        return None
    if isinstance(value, Object):
        return entity(value)
    kind = "str" if isinstance(value, str) else type(value).__name__
    if isinstance(value, (datetime.datetime, datetime.date)):
        return {"type": kind, "value": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"type": kind, "value": str(value)}
    return {"type": kind, "value": plain(value)}


def entity(obj: Any) -> dict[str, Any]:
    """A suds object: its field names in the order suds holds them, and their typed values."""
    names = [name for name, _ in obj]
    return {"fields": names, "values": {name: typed(getattr(obj, name)) for name in names}}


def items(result: Any, item: str) -> list[Any]:
    """The items of an ArrayOfX result (suds gives empty text for an empty array element)."""
    if result is None or (isinstance(result, str) and not result.strip()):
        return []
    return as_list(getattr(result, item, None))


def build_args(factory: Any, operation: str, raw_args: dict[str, Any]) -> dict[str, Any]:
    """The SDK's keyword arguments: arrays and entities made with the client's own factory."""
    kwargs = dict(raw_args)
    if operation == "DispatchCoupons" and kwargs.get("SendToEmails") is not None:
        emails = factory.create(f"{{{ARRAYS_NS}}}ArrayOfstring")
        emails.string = kwargs["SendToEmails"]
        kwargs["SendToEmails"] = emails
    if operation == "DistributeCoupons" and kwargs.get("AccountIds") is not None:
        account_ids = factory.create(f"{{{ARRAYS_NS}}}ArrayOfint")
        account_ids.int = kwargs["AccountIds"]
        kwargs["AccountIds"] = account_ids
    if operation == "CheckFeatureAdoptionCouponEligibility" and kwargs.get("AccountIds") is not None:
        account_ids = factory.create(f"{{{ARRAYS_NS}}}ArrayOflong")
        account_ids.long = kwargs["AccountIds"]
        kwargs["AccountIds"] = account_ids
    if operation == "ClaimFeatureAdoptionCoupons" and kwargs.get("AccountCouponPairs") is not None:
        pairs = factory.create(f"{{{ENTITIES_NS}}}ArrayOfKeyValueEntityOflongstring")
        values = []
        for spec in kwargs["AccountCouponPairs"]:
            pair = factory.create(f"{{{ENTITIES_NS}}}KeyValueEntityOflongstring")
            pair.Key, pair.Value = spec["Key"], spec["Value"]
            values.append(pair)
        pairs.KeyValueEntityOflongstring = values
        kwargs["AccountCouponPairs"] = pairs
    if operation == "SearchCoupons":
        for key, array, item in (("Predicates", "ArrayOfPredicate", "Predicate"),
                                 ("Ordering", "ArrayOfOrderBy", "OrderBy")):
            if kwargs.get(key) is not None:
                container = factory.create(f"{{{ENTITIES_NS}}}{array}")
                values = []
                for spec in kwargs[key]:
                    obj = factory.create(f"{{{ENTITIES_NS}}}{item}")
                    for name, value in spec.items():
                        setattr(obj, name, value)
                    values.append(obj)
                setattr(container, item, values)
                kwargs[key] = container
        if kwargs.get("PageInfo") is not None:
            paging = factory.create(f"{{{ENTITIES_NS}}}Paging")
            for name, value in kwargs["PageInfo"].items():
                setattr(paging, name, value)
            kwargs["PageInfo"] = paging
    return kwargs


def read_result(operation: str, result: Any) -> dict[str, Any]:
    if operation == "DispatchCoupons":
        return {"partial_errors": batch_errors(result)}
    if operation == "SearchCoupons":
        return {"coupons": [typed(c) for c in items(result, "Coupon")]}
    if operation == "RedeemCoupon":
        return {"redemption_date": typed(result)}
    if operation == "GetCouponInfo":
        return {"coupon_info": [typed(c) for c in items(result, "CouponInfoData")]}
    if operation in ("DistributeCoupons", "ClaimFeatureAdoptionCoupons"):
        partial = items(getattr(result, "PartialErrors", None), "ArrayOfOperationError")
        out = {"operation_errors": operation_errors(getattr(result, "OperationErrors", None)),
               "partial_errors_lists": [operation_errors(p) for p in partial]}
        if operation == "ClaimFeatureAdoptionCoupons":
            out["claimed"] = [typed(kv) for kv in items(getattr(result, "ClaimedDateByAccountId", None),
                                                       "KeyValueEntityOflongdateTime")]
        return out
    if operation == "CheckFeatureAdoptionCouponEligibility":
        return {"eligible": [typed(v) for v in items(result, "long")]}
    return {"result": None if result is None else str(result)}


def wire_partial_errors(reply: Any, operation: str) -> list[list[int]]:
    """The error codes of each PartialErrors item as the SDK received them.  suds drops *leading* empty items
    of an array when it builds objects (an empty ``ArrayOfOperationError`` before the first non-empty one
    disappears), so index alignment is read from the reply suds kept (``last_received``)."""
    response = reply.getChild("Envelope").getChild("Body").getChild(f"{operation}Response")
    partial = response.getChild("PartialErrors")
    return [[int(e.getChild("Code").getText()) for e in item.getChildren("OperationError")]
            for item in (partial.getChildren("ArrayOfOperationError") if partial is not None else [])]


def operation_errors(value: Any) -> list[dict[str, Any]]:
    """An ArrayOfOperationError as the SDK gives it (an empty element is empty text or None)."""
    return [{"Code": plain(e.Code), "Details": plain(e.Details), "Message": plain(e.Message)}
            for e in items(value, "OperationError")]


def sdk_call(base_url: str, call: dict[str, Any]) -> dict[str, Any]:
    auth = authentication(call)
    data = AuthorizationData(
        account_id=call.get("account_id", 111), customer_id=call.get("customer_id", 222),
        developer_token=call.get("developer_token"), authentication=auth,
    )
    transport = RecordingTransport()
    service = ServiceClient("CustomerBillingService", 13, authorization_data=data, environment="production",
                            location=base_url + SOAP_PATH, transport=transport)
    if call.get("auth") == "implicit-no-refresh":
        service.refresh_oauth_tokens_automatically = False
    operation = call.get("operation", "DispatchCoupons")
    kwargs = build_args(service.factory, operation, call.get("args", {}))
    out: dict[str, Any] = {}
    try:
        try:
            result = getattr(service, operation)(**kwargs)
            out = {"outcome": "response", **read_result(operation, result)}
            if operation in ("DistributeCoupons", "ClaimFeatureAdoptionCoupons"):
                out["wire_partial_errors"] = wire_partial_errors(service._soap_client.last_received(), operation)
        except WebFault as ex:
            out = {"outcome": "fault", **read_fault(ex)}
        out["header_tracking_id"] = plain(service.get_response_header().get("TrackingId"))
        out["http_status"] = transport.last_status
        out["http_tracking_id"] = transport.last_tracking_id
    finally:
        out["refreshes"] = getattr(auth, "refreshes", [])
    return out


def wsdl_call(base_url: str, call: dict[str, Any]) -> dict[str, Any]:
    """A generic suds client built from the server's own ?wsdl (not the SDK's bundled copy)."""
    transport = RecordingTransport()
    client = Client(base_url + SOAP_PATH + "?wsdl", transport=transport)
    client.set_options(soapheaders={"AuthenticationToken": call.get("access_token"),
                                    "DeveloperToken": call.get("developer_token")})
    operation = call.get("operation", "DispatchCoupons")
    kwargs = build_args(client.factory, operation, call.get("args", {}))
    try:
        out = {"outcome": "response", **read_result(operation, getattr(client.service, operation)(**kwargs))}
    except WebFault as ex:
        out = {"outcome": "fault", **read_fault(ex)}
    reply = client.last_received()
    header = reply.getChild("Envelope").getChild("Header") if reply is not None else None
    tracking = header.getChild("TrackingId") if header is not None else None
    out["header_tracking_id"] = plain(tracking.getText()) if tracking is not None else None
    out["http_status"] = transport.last_status
    out["http_tracking_id"] = transport.last_tracking_id
    out["refreshes"] = []
    return out


def run(instruction: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for call in instruction["calls"]:
        runner = wsdl_call if call.get("client", "sdk") == "suds-wsdl" else sdk_call
        try:
            result = runner(instruction["base_url"], call)
        except Exception as ex:  # reported, not raised: the test decides whether it was expected
            result = {"outcome": "exception", "type": type(ex).__name__, "message": str(ex), "refreshes": []}
        results.append({"id": call.get("id"), **result})
    return results


def main() -> None:
    raw = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    json.dump(run(json.loads(raw)), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
