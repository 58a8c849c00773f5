"""Entrypoints: the ASGI app (SOAP and REST over one service layer), the CLI."""
