"""Safe XML parsing for untrusted SOAP bodies.

No DTD (a document with a DOCTYPE is refused, as SOAP 1.1 requires), no entity expansion, no
network access, bounded element depth.  Parsers are per thread: lxml parsers must not be shared
by concurrent threads.
"""

from __future__ import annotations

import threading
from typing import Any

from lxml import etree

_local = threading.local()


class UnsafeOrMalformedXml(ValueError):
    """The body is not well-formed XML, or uses a feature refused for safety; the message says which."""


def _parser() -> Any:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def parse(body: bytes, max_depth: int) -> Any:
    """Parse ``body`` into an element tree root, or raise UnsafeOrMalformedXml."""
    if not body.strip():
        raise UnsafeOrMalformedXml("The request body is empty; a SOAP envelope is expected.")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise UnsafeOrMalformedXml("Document type declarations are not allowed in SOAP messages.")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeOrMalformedXml(f"The request body is not well-formed XML: {exc.msg}") from exc
    except ValueError as exc:  # e.g. a unicode string with an encoding declaration
        raise UnsafeOrMalformedXml(f"The request body could not be read as XML: {exc}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeOrMalformedXml("Document type declarations are not allowed in SOAP messages.")
    _check_depth(root, max_depth)
    return root


def _check_depth(root: Any, max_depth: int) -> None:
    """Refuse elements nested deeper than ``max_depth`` (the root is depth 1).

    One XPath step per level, evaluated by libxml2: a million-element envelope is checked in tens of
    milliseconds, where a walk in Python took seconds and, holding the GIL, slowed every other call."""
    if root.xpath("boolean(" + "/".join(["*"] * max_depth) + ")"):
        raise UnsafeOrMalformedXml(f"The XML nesting is deeper than {max_depth} elements.")
