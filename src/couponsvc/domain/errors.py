"""The error catalogue (SPEC section 8) and the one exception hierarchy of the service.

Every refusal the service can give is a row of ``CATALOGUE``.  The service layer raises
``ServiceFault`` (whole-call refusals) or returns ``BatchError`` values (per-item refusals);
the SOAP and REST entrypoints render them, each in its own wire format.  Nothing else in the
code base chooses an error number, an ErrorCode string or an HTTP status.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FaultKind(enum.Enum):
    """Where an error travels on the wire."""

    AD_API = "AdApiFaultDetail"  # credentials, authorization, throttling, internal errors
    API = "ApiFault"  # invalid requests and whole-call business refusals
    BATCH = "BatchError"  # one item of a batch (PartialErrors)
    OPERATION = "OperationError"  # one account's refusal in PartialErrors of the feature-adoption operations


@dataclass(frozen=True, slots=True)
class ErrorDef:
    code: int
    error_code: str
    kind: FaultKind
    http_status: int | None
    message: str


class Err(enum.IntEnum):
    INTERNAL_ERROR = 0
    NULL_REQUEST = 100
    INVALID_CREDENTIALS = 105
    USER_IS_NOT_AUTHORIZED = 106
    AUTHENTICATION_TOKEN_EXPIRED = 109
    REQUEST_MISSING_HEADERS = 116
    CALL_RATE_EXCEEDED = 117
    API_INPUT_VALIDATION_ERROR = 201
    NULL_PARAMETER = 203
    OPERATION_NOT_SUPPORTED = 204
    NULL_ARRAY_ARGUMENT = 206
    INVALID_ACCOUNT = 208
    COUNT_EXCEEDS_LIMIT = 4603
    COUPON_CLASS_NOT_FOUND = 3000
    INVALID_EMAIL_ADDRESS = 3001
    DUPLICATE_EMAIL_IN_REQUEST = 3002
    COUPON_ALREADY_SENT_TO_EMAIL = 3003
    NO_COUPON_AVAILABLE = 3004
    EMAIL_DELIVERY_FAILED = 3005
    COUPON_CODE_NOT_FOUND = 3006
    COUPON_ALREADY_REDEEMED = 3007
    COUPON_EXPIRED = 3008
    COUPON_NOT_YET_ACTIVE = 3009
    COUPON_CURRENCY_MISMATCH = 3010
    COUPON_CLASS_EXPIRED = 3011
    COUPON_ALREADY_DISTRIBUTED_TO_ACCOUNT = 3012
    # 3013 is reserved (SPEC 5.1): never answered; see docs/error-catalogue.md


_AD, _API, _BATCH, _OP = FaultKind.AD_API, FaultKind.API, FaultKind.BATCH, FaultKind.OPERATION

CATALOGUE: dict[Err, ErrorDef] = {
    Err(d.code): d
    for d in (
        ErrorDef(0, "InternalError", _AD, 500, "An internal error has occurred. Retry the call later."),
        ErrorDef(100, "NullRequest", _API, 400, "The request message is null or missing."),
        ErrorDef(105, "InvalidCredentials", _AD, 401,
                 "Authentication failed. Either supplied credentials are invalid or the account is inactive."),
        ErrorDef(106, "UserIsNotAuthorized", _AD, 403,
                 "The user is not authorized to act for this customer or account."),
        ErrorDef(109, "AuthenticationTokenExpired", _AD, 401,
                 "The authentication token has expired. Request a new access token and retry."),
        ErrorDef(116, "RequestMissingHeaders", _AD, 401,
                 "The request is missing one or more required headers."),
        ErrorDef(117, "CallRateExceeded", _AD, 429, "You have exceeded the number of calls allowed. Retry later."),
        ErrorDef(201, "ApiInputValidationError", _API, 400, "The request is not valid."),
        ErrorDef(203, "NullParameter", _API, 400, "A required parameter is null or empty."),
        ErrorDef(204, "OperationNotSupported", _API, 400, "This operation is not supported by this service."),
        ErrorDef(206, "NullArrayArgument", _API, 400, "The list argument is null or empty."),
        ErrorDef(208, "InvalidAccount", _API, 400, "The account does not exist."),
        ErrorDef(4603, "CountExceedsLimit", _API, 400, "The number of items exceeds the limit for this call."),
        ErrorDef(3000, "CouponClassNotFound", _API, 400, "The customer has no coupon class of that name."),
        ErrorDef(3001, "InvalidEmailAddress", _BATCH, None, "The email address is not valid."),
        ErrorDef(3002, "DuplicateEmailInRequest", _BATCH, None,
                 "The email address already appears earlier in this request."),
        ErrorDef(3003, "CouponAlreadySentToEmail", _BATCH, None,
                 "A coupon of this class has already been sent to this email address."),
        ErrorDef(3004, "NoCouponAvailable", _BATCH, None, "No coupon of this class is available."),
        ErrorDef(3005, "EmailDeliveryFailed", _BATCH, None,
                 "The mail relay permanently refused this address; the coupon was not sent."),
        ErrorDef(3006, "CouponCodeNotFound", _API, 400, "The coupon code does not exist."),
        ErrorDef(3007, "CouponAlreadyRedeemed", _API, 400, "The coupon has already been redeemed."),
        ErrorDef(3008, "CouponExpired", _API, 400, "The coupon has expired."),
        ErrorDef(3009, "CouponNotYetActive", _API, 400, "The coupon cannot be redeemed before its start date."),
        ErrorDef(3010, "CouponCurrencyMismatch", _API, 400,
                 "The account currency differs from the coupon currency."),
        ErrorDef(3011, "CouponClassExpired", _API, 400, "The coupon class has expired."),
        ErrorDef(3012, "CouponAlreadyDistributedToAccount", _OP, None,
                 "The account already holds a coupon of this class."),
    )
}


def lookup(code: Err | int) -> ErrorDef:
    return CATALOGUE[Err(code)]


class CouponSvcError(Exception):
    """Root of every exception the service raises on purpose."""


class ServiceFault(CouponSvcError):
    """A whole call is refused with one catalogue error (rendered as a SOAP fault or a REST ApplicationFault).

    ``details`` names the offending value where that helps; it never holds a secret.
    """

    def __init__(self, code: Err, details: str | None = None, *, retry_after: int | None = None) -> None:
        self.error = lookup(code)
        if self.error.kind in (FaultKind.BATCH, FaultKind.OPERATION):
            raise ValueError(f"{code!r} is a per-item error, not a fault")
        self.details = details
        self.retry_after = retry_after
        super().__init__(f"{self.error.code} {self.error.error_code}" + (f": {details}" if details else ""))

    @property
    def http_status(self) -> int:
        assert self.error.http_status is not None
        return self.error.http_status


@dataclass(frozen=True, slots=True)
class BatchError:
    """One item of PartialErrors: ``index`` is the zero-based position of the item in the request."""

    code: int
    error_code: str
    message: str
    index: int
    details: str | None = None

    @classmethod
    def of(cls, code: Err, index: int, details: str | None = None) -> BatchError:
        d = lookup(code)
        assert d.kind is FaultKind.BATCH
        return cls(d.code, d.error_code, d.message, index, details)


@dataclass(frozen=True, slots=True)
class OperationError:
    """One refusal of one item in the PartialErrors of DistributeCoupons / ClaimFeatureAdoptionCoupons: any
    catalogue error but the credential ones (e.g. 208, 3002, 3012), as an exc:OperationError."""

    code: int
    message: str
    details: str | None = None

    @classmethod
    def of(cls, code: Err, details: str | None = None) -> OperationError:
        d = lookup(code)
        assert d.kind is not FaultKind.AD_API
        return cls(d.code, d.message, details)


class ConfigurationError(CouponSvcError):
    """A bad setting, seed file or CSV: the message names the key, file or line at fault."""


class StoreUnavailable(CouponSvcError):
    """The database could not be reached or answered with an unexpected error."""


class DeadlineExceeded(CouponSvcError):
    """The call ran out of its request time (COUPONSVC_REQUEST_TIMEOUT): refused with 0, nothing changed."""


class OperatorInputError(CouponSvcError):
    """An operator's request (console or CLI) cannot be done as asked; the message says why."""


class NotFound(OperatorInputError):
    """An operator-side lookup found nothing (a class, a message, a token, an operator)."""


class SignInThrottled(CouponSvcError):
    """Too many failed console sign-ins for this name or client: refused without checking the password."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed sign-ins. Try again in {max(1, (retry_after + 59) // 60)} minute(s).")
        self.retry_after = retry_after


def catalogue_markdown() -> str:
    """The catalogue as the Markdown table in docs/error-catalogue.md (a test keeps the two equal)."""
    where = {FaultKind.AD_API: "AdApiFaultDetail", FaultKind.API: "ApiFault", FaultKind.BATCH: "BatchError",
             FaultKind.OPERATION: "OperationError (PartialErrors)"}
    lines = [
        "| Code | ErrorCode | Where | HTTP (REST) | Message |",
        "|---|---|---|---|---|",
    ]
    for d in CATALOGUE.values():
        status = "—" if d.http_status is None else str(d.http_status)
        lines.append(f"| {d.code} | {d.error_code} | {where[d.kind]} | {status} | {d.message} |")
    return "\n".join(lines) + "\n"
