"""Every XML namespace the SOAP binding and the WSDL use, in one place."""

from __future__ import annotations

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
BIL = "https://bingads.microsoft.com/Billing/v13"
ARR = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
EXC = "https://bingads.microsoft.com/Customer/v13/Exception"
ENT = "https://bingads.microsoft.com/Customer/v13/Entities"
AD = "https://adapi.microsoft.com"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"

#: prefixes written in responses (clients match by URI; these only make the XML readable)
RESPONSE_NSMAP = {"s": SOAP_ENV, "i": XSI, "bil": BIL, "exc": EXC, "ad": AD, "ent": ENT, "arr": ARR}

XSI_NIL = f"{{{XSI}}}nil"


def q(ns: str, local: str) -> str:
    """Clark notation: ``{uri}local``."""
    return f"{{{ns}}}{local}"
