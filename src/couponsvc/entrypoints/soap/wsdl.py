"""Serves the WSDL (``?wsdl`` and ``?singleWsdl``: the same self-contained document) with this server's address."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from xml.sax.saxutils import quoteattr

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

WSDL_FILE = "CustomerBillingService.wsdl"


@lru_cache(maxsize=1)
def wsdl_template() -> str:
    return resources.files(__package__).joinpath(WSDL_FILE).read_text("utf-8")


def render_wsdl(location: str) -> str:
    return wsdl_template().replace('"__LOCATION__"', quoteattr(location))


async def wsdl_endpoint(request: Request) -> Response:
    keys = {k.lower() for k in request.query_params}
    if not keys & {"wsdl", "singlewsdl"}:
        return PlainTextResponse(
            "couponsvc Customer Billing service v13 (SOAP 1.1). POST SOAP envelopes here; "
            "the service description is at ?wsdl or ?singleWsdl.\n"
        )
    public_url = request.app.state.container.settings.public_url
    if public_url:  # behind a reverse proxy: advertise the address clients use
        location = public_url + request.url.path
    else:
        location = str(request.url.replace(query="", fragment=""))
    return Response(render_wsdl(location), media_type="text/xml; charset=utf-8")
