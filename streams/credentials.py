"""Credentials for Kafka and Redis, from the URL or ``ENF_`` settings.

Kafka: ``kafka://user:password@h1:9093;h2:9093?security_protocol=SASL_SSL&
sasl_mechanism=SCRAM-SHA-512&ssl_cafile=/ca.pem`` (every query key is also a
setting: ``ENF_KAFKA_SECURITY_PROTOCOL``, ``ENF_KAFKA_SASL_MECHANISM``,
``ENF_KAFKA_SASL_USERNAME``, ``ENF_KAFKA_SASL_PASSWORD``, ``ENF_KAFKA_SSL_CAFILE``,
``ENF_KAFKA_SSL_CERTFILE``, ``ENF_KAFKA_SSL_KEYFILE``; a setting fills what the URL
leaves out). A user name without a protocol means SASL (``SASL_SSL`` when a CA
file is given, else ``SASL_PLAINTEXT``) with PLAIN; a CA or certificate file
alone means ``SSL``. Mechanisms: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.

Redis: redis-py reads ``redis://user:password@host/0`` (AUTH, or an ACL user) and
``rediss://`` (TLS, with ``?ssl_ca_certs=…&ssl_certfile=…&ssl_keyfile=…``) from
the URL itself; ``redis_url_with`` folds the ``ENF_REDIS_*`` settings into it.

Secrets stay out of ``repr`` and, through ``streams.redact``, out of every log
line, status page and summary.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = ["KAFKA_PROTOCOLS", "SASL_MECHANISMS", "KafkaSecurity", "redis_url_with",
           "strip_kafka_credentials"]

KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_QUERY_KEYS = ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password",
               "ssl_cafile", "ssl_certfile", "ssl_keyfile")


def _split_kafka(url: str) -> tuple[str, str, str, str]:
    """(hosts part without credentials, user, password, query) of a Kafka URL."""
    scheme, _, rest = url.partition("://") if "://" in url else ("", "", url)
    rest, _, query = rest.partition("?")
    user = password = ""
    hosts = []
    for part in rest.replace(",", ";").split(";"):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if "@" in part:
            info, part = part.rsplit("@", 1)
            u, _, p = info.partition(":")
            user, password = user or u, password or p
        if part:
            hosts.append(part.rstrip("/"))
    prefix = f"{scheme}://" if scheme else ""
    return prefix + ";".join(hosts), user, password, query


def strip_kafka_credentials(url: str) -> str:
    """``kafka://u:p@h1:9092;h2:9092?…`` → ``kafka://h1:9092;h2:9092`` (Faust's form)."""
    return _split_kafka(url)[0]


@dataclass(frozen=True)
class KafkaSecurity:
    """How clients authenticate to Kafka (defaults: plaintext, no SASL)."""

    protocol: str = "PLAINTEXT"
    mechanism: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    @classmethod
    def from_url(cls, url: str, **settings: str) -> KafkaSecurity:
        """Credentials from ``url``, then from ``settings`` (the keys of the URL
        query: security_protocol, sasl_mechanism, sasl_username, ...)."""
        from urllib.parse import unquote

        _, user, password, query = _split_kafka(url)
        given = {k.lower(): v for k, v in parse_qsl(query)}
        for key, value in settings.items():
            if value and not given.get(key):
                given[key] = value
        unknown = set(given) - set(_QUERY_KEYS)
        if unknown:
            raise ValueError(f"unknown Kafka URL option(s) {sorted(unknown)}; "
                             f"known: {', '.join(_QUERY_KEYS)}")
        username = unquote(user) or given.get("sasl_username", "")
        secret = unquote(password) or given.get("sasl_password", "")
        cafile = given.get("ssl_cafile", "")
        certfile = given.get("ssl_certfile", "")
        protocol = given.get("security_protocol", "").upper()
        if not protocol:
            tls = bool(cafile or certfile)
            protocol = ("SASL_SSL" if tls else "SASL_PLAINTEXT") if username else (
                "SSL" if tls else "PLAINTEXT")
        mechanism = given.get("sasl_mechanism", "").upper()
        if protocol.startswith("SASL") and not mechanism:
            mechanism = "PLAIN"
        out = cls(protocol, mechanism, username, secret, cafile, certfile,
                  given.get("ssl_keyfile", ""))
        out.check()
        return out

    def check(self) -> None:
        if self.protocol not in KAFKA_PROTOCOLS:
            raise ValueError(f"security_protocol must be one of {', '.join(KAFKA_PROTOCOLS)}, "
                             f"not {self.protocol!r}")
        if self.sasl:
            if self.mechanism not in SASL_MECHANISMS:
                raise ValueError(f"sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)}, "
                                 f"not {self.mechanism!r}")
            if not self.username or not self.password:
                raise ValueError(f"{self.protocol} needs a user name and a password")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context (the CA file, else the system's), with the client
        certificate when given; None without TLS."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile or None)
        return ctx

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer."""
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl:
            out.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                       sasl_plain_password=self.password)
        if self.tls:
            out["ssl_context"] = self.ssl_context()
        return out

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaAdminClient: the same names as aiokafka's."""
        return self.aiokafka()

    def faust(self) -> Any:
        """Faust's ``broker_credentials`` (None: plaintext)."""
        import faust

        if self.sasl:
            creds = faust.SASLCredentials(username=self.username, password=self.password,
                                          ssl_context=self.ssl_context(),
                                          mechanism=self.mechanism)
            if not self.tls:
                creds.protocol = faust.types.auth.AuthProtocol.SASL_PLAINTEXT
            return creds
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None


def redis_url_with(url: str, *, username: str = "", password: str = "", ssl_ca_certs: str = "",
                   ssl_certfile: str = "", ssl_keyfile: str = "") -> str:
    """``url`` with the given credentials and TLS files folded in where it has none."""
    if not (username or password or ssl_ca_certs or ssl_certfile or ssl_keyfile):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if (username or password) and "@" not in netloc:
        info = quote(username, safe="") + (f":{quote(password, safe='')}" if password else "")
        netloc = f"{info}@{netloc}"
    query = dict(parse_qsl(parts.query))
    for key, value in (("ssl_ca_certs", ssl_ca_certs), ("ssl_certfile", ssl_certfile),
                       ("ssl_keyfile", ssl_keyfile)):
        if value and key not in query:
            query[key] = value
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), parts.fragment))
