"""The vendor's own schemas, from the WSDL the official `bingads` 13.0.30.1 package ships, as an lxml XMLSchema.

The WSDL holds six ``xs:schema`` elements that refer to each other by namespace only (WCF writes
``<xs:import namespace=.../>`` without a location, and not even for every namespace it uses).  They are
assembled in memory: each gets an import, with an in-memory location, of every other namespace, and one
driver schema imports all six.  Nothing is fetched from anywhere.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from tests.support.sdk import INTERPRETERS

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"


def vendor_wsdl_path() -> Path:
    """customerbilling_service.xml inside the SOAP SDK environment (.venv-soap)."""
    root = INTERPRETERS["soap"].parent.parent
    found = sorted(root.glob("lib/python3*/site-packages/bingads/v13/proxies/production/customerbilling_service.xml"))
    if not found:
        raise FileNotFoundError(f"the vendor WSDL is not in {root}: run `make sdks`")
    return found[0]


class _Memory(etree.Resolver):
    def __init__(self, documents: dict[str, bytes]) -> None:
        super().__init__()
        self.documents = documents

    def resolve(self, url: str | None, pubid: str | None, context: Any) -> Any:
        if url in self.documents:
            return self.resolve_string(self.documents[url], context)
        raise OSError(f"refusing to fetch {url!r}: only the vendor's in-memory schemas are available")


@lru_cache(maxsize=1)
def vendor_schema() -> etree.XMLSchema:
    wsdl = etree.parse(str(vendor_wsdl_path()))
    schemas = wsdl.getroot().findall(f"{{{WSDL}}}types/{{{XS}}}schema")
    locations = {s.get("targetNamespace"): f"mem://schema-{i}.xsd" for i, s in enumerate(schemas)}
    documents: dict[str, bytes] = {}
    for schema in schemas:
        copy = etree.fromstring(etree.tostring(schema))  # keeps the WSDL's namespace declarations in scope
        for old in copy.findall(f"{{{XS}}}import"):
            copy.remove(old)
        own = copy.get("targetNamespace")
        others = [(ns, loc) for ns, loc in sorted(locations.items()) if ns != own]
        for position, (namespace, location) in enumerate(others):
            copy.insert(position, etree.Element(f"{{{XS}}}import", namespace=namespace, schemaLocation=location))
        documents[locations[own]] = etree.tostring(copy)
    driver = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS})
    for namespace, location in sorted(locations.items()):
        etree.SubElement(driver, f"{{{XS}}}import", namespace=namespace, schemaLocation=location)
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    parser.resolvers.add(_Memory(documents))
    return etree.XMLSchema(etree.fromstring(etree.tostring(driver), parser))


def validation_errors(element: Any) -> list[str]:
    """Why ``element`` (validated as a document of its own) is not valid by the vendor's schema; [] if it is."""
    schema = vendor_schema()
    document = etree.fromstring(etree.tostring(element))
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]  # type: ignore[attr-defined]
