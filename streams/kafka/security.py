"""How every Kafka client connects: the security protocol, SASL (PLAIN, SCRAM-SHA-256/512) and TLS settings, for
aiokafka's clients (``kafka_options``) and faust's apps (``faust_credentials``). Every client segmenter builds
takes its options from here (``tests/streams/test_kafka_security.py`` reads the source to hold that)."""

from __future__ import annotations

import ssl
from typing import Any

from streams.settings import Settings


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(str(settings.kafka_ssl_certfile),
                                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None)
    return context


def kafka_options(settings: Settings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security keyword arguments of an aiokafka consumer, producer or admin client."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap,
                               "security_protocol": settings.kafka_security_protocol}
    context = _ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = (settings.kafka_sasl_password.get_secret_value()
                                          if settings.kafka_sasl_password is not None else None)
    return options


def faust_credentials(settings: Settings) -> Any:
    """faust's ``broker_credentials`` for the same settings (None: plaintext)."""
    import faust  # noqa: PLC0415 - faust takes a second to import: CLI commands that need no app skip it

    protocol, context = settings.kafka_security_protocol, _ssl_context(settings)
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    return faust.SASLCredentials(username=settings.kafka_sasl_username, password=password, ssl_context=context,
                                 mechanism=settings.kafka_sasl_mechanism)
