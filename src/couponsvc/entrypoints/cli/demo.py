"""Demo data for ``couponsvc serve --demo``: fixed, documented tokens so the README's requests just work."""

from __future__ import annotations

from typing import Any

DEMO_DEVELOPER_TOKEN = "DEMO-DEVELOPER-TOKEN"
DEMO_ACCESS_TOKEN = "DEMO-ACCESS-TOKEN"
DEMO_CUSTOMER_ID = 222
DEMO_ACCOUNT_ID = 111
DEMO_CLASS = "SPRING-100"

DEMO_SEED: dict[str, Any] = {
    "developer_tokens": [{"token": DEMO_DEVELOPER_TOKEN, "name": "demo"}],
    "customers": [{
        "id": DEMO_CUSTOMER_ID, "name": "Contoso Agency (demo)",
        "accounts": [{"id": DEMO_ACCOUNT_ID, "number": "F111AAAA", "currency_code": "USD"}],
        "coupon_classes": [{
            "name": DEMO_CLASS, "coupon_type": "Acquisition",
            "amount": 100.0, "currency_code": "USD", "spend_threshold": 25.0,
            "percent_off": None, "active_duration": 30,
            "start_date": "2026-01-01T00:00:00Z", "end_date": "2099-12-31T23:59:59Z",
            "expiration_date": "2099-12-31T23:59:59Z",
            "generate": 1000,
        }],
    }],
    "users": [{"name": "demo", "customers": [DEMO_CUSTOMER_ID],
               "access_tokens": [{"token": DEMO_ACCESS_TOKEN, "expires_at": "2099-12-31T23:59:59Z"}]}],
}


def demo_banner(base_url: str) -> str:
    soap = f"""curl -s {base_url}/Api/Billing/v13/CustomerBillingService.svc \\
  -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: DispatchCoupons' --data-binary @- <<'XML'
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Header xmlns="https://bingads.microsoft.com/Billing/v13">
    <AuthenticationToken>{DEMO_ACCESS_TOKEN}</AuthenticationToken>
    <DeveloperToken>{DEMO_DEVELOPER_TOKEN}</DeveloperToken>
  </s:Header>
  <s:Body>
    <DispatchCouponsRequest xmlns="https://bingads.microsoft.com/Billing/v13">
      <SendToEmails xmlns:a="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
        <a:string>ada@example.com</a:string>
      </SendToEmails>
      <CustomerId>{DEMO_CUSTOMER_ID}</CustomerId>
      <CouponClassName>{DEMO_CLASS}</CouponClassName>
    </DispatchCouponsRequest>
  </s:Body>
</s:Envelope>
XML"""
    rest = f"""curl -s {base_url}/CustomerBilling/v13/Coupons/Dispatch \\
  -H 'Content-Type: application/json' \\
  -H 'Authorization: Bearer {DEMO_ACCESS_TOKEN}' \\
  -H 'DeveloperToken: {DEMO_DEVELOPER_TOKEN}' \\
  -H 'CustomerId: {DEMO_CUSTOMER_ID}' -H 'CustomerAccountId: {DEMO_ACCOUNT_ID}' \\
  -d '{{"SendToEmails": ["grace@example.com"], "CustomerId": "{DEMO_CUSTOMER_ID}", "CouponClassName": "{DEMO_CLASS}"}}'"""  # noqa: E501
    return f"""
Demo data loaded (customer {DEMO_CUSTOMER_ID}, class {DEMO_CLASS}, 1000 codes).
  DeveloperToken:      {DEMO_DEVELOPER_TOKEN}
  AuthenticationToken: {DEMO_ACCESS_TOKEN}   (demo only: anyone who reads this can use it)

Dispatch a coupon over REST:
{rest}

Or over SOAP:
{soap}
"""
