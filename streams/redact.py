"""Credentials never leave the process in text: URLs are redacted before they are
logged, served on ``/enf/status`` or printed in the demo's JSON."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SECRET_FIELDS", "redact", "redact_url"]

# Query parameters and setting names whose values are secrets.
SECRET_FIELDS = ("password", "passwd", "pass", "secret", "token", "sasl_password",
                 "sasl_plain_password", "ssl_password", "key_password", "auth")
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/;,\s]*)"
                       r"(?::(?P<pw>[^@/;,\s]*))?@")
_QUERY = re.compile(r"(?P<key>[?&;](?:" + "|".join(SECRET_FIELDS) + r"))=(?P<value>[^&;#\s]*)",
                    re.IGNORECASE)
MASK = "***"


def redact_url(url: str) -> str:
    """``url`` with every password (userinfo, ``?password=``...) replaced by ``***``;
    the user name stays (it is not a secret and helps an operator)."""

    def userinfo(m: re.Match[str]) -> str:
        if m.group("pw") is None:
            return m.group(0) if not m.group("user") else f"{m.group('scheme')}{m.group('user')}@"
        return f"{m.group('scheme')}{m.group('user')}:{MASK}@"

    out = _USERINFO.sub(userinfo, url)
    # Broker lists (kafka://u:p@h1;u:p@h2) repeat the userinfo without a scheme.
    out = re.sub(r"(?P<sep>[;,])(?P<user>[^:@/;,\s]+):(?P<pw>[^@/;,\s]*)@",
                 lambda m: f"{m.group('sep')}{m.group('user')}:{MASK}@", out)
    return _QUERY.sub(lambda m: f"{m.group('key')}={MASK}", out)


def redact(value: Any) -> Any:
    """Every string in ``value`` (nested dicts / lists) passed through redact_url."""
    if isinstance(value, str):
        return redact_url(value) if "://" in value or "=" in value else value
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and k.lower() in SECRET_FIELDS and v
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
