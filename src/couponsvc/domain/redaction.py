"""The one redaction helper: secrets in URLs are replaced by ``***`` before a URL reaches a log or message."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
#: query parameters that carry a secret (libpq's ``password``, tokens of mail or cache URLs)
SECRET_PARAMS = frozenset({"password", "pass", "passwd", "pwd", "secret", "token", "access_token", "api_key",
                           "apikey", "key", "sslpassword"})
_USERINFO = re.compile(r"^(?P<scheme>[^:/?#]*://)(?P<userinfo>[^/?#]*)@")


def redact_url(url: str) -> str:
    """``url`` with the password of its user part and any secret query parameter masked.

    Works on malformed URLs too (it never raises): whatever stands between ``://`` and the last ``@``
    of the authority loses everything after its first ``:``.
    """
    out = url
    match = _USERINFO.match(out)
    if match is not None:
        user, sep, _password = match["userinfo"].partition(":")
        masked = f"{user}:{MASK}" if sep else user
        out = match["scheme"] + masked + "@" + out[match.end():]
    try:
        query = urlsplit(out).query
    except ValueError:
        query = out.partition("?")[2].partition("#")[0]
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() in SECRET_PARAMS and value:
            out = re.sub(rf"([?&]{re.escape(key)}=)[^&#]*", rf"\g<1>{MASK}", out)
    return out
