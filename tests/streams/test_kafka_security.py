"""Kafka security settings reach every client segmenter builds (aiokafka consumers, producers, admin clients and
faust apps), and secrets are never shown."""

import ast
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from streams.kafka.security import faust_credentials, kafka_options
from streams.settings import Settings
from streams.text import masked_url
from streams.worker.app import create_app

STREAMS = Path(__file__).resolve().parents[2] / "streams"
CLIENTS = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient"}


def _secure(tmp_path: Path, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path, kafka_bootstrap="broker:9093", kafka_security_protocol="SASL_SSL",
                    kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="segmenter",
                    kafka_sasl_password=SecretStr("hunter2"), **extra)


def test_options_carry_sasl_and_tls(tmp_path):
    options = kafka_options(_secure(tmp_path))
    assert options["bootstrap_servers"] == "broker:9093"
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("segmenter", "hunter2")
    assert options["ssl_context"] is not None
    plain = kafka_options(Settings(data_dir=tmp_path))
    assert plain == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}


def test_faust_apps_get_the_same_credentials(tmp_path):
    credentials = faust_credentials(_secure(tmp_path))
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.mechanism.value, credentials.username, credentials.password) == (
        "SCRAM-SHA-512", "segmenter", "hunter2")
    app = create_app(_secure(tmp_path))
    assert app.conf.broker_credentials.mechanism.value == "SCRAM-SHA-512"
    assert faust_credentials(Settings(data_dir=tmp_path)) is None


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


@pytest.mark.parametrize("path", sorted(STREAMS.rglob("*.py")), ids=lambda p: str(p.relative_to(STREAMS)))
def test_every_kafka_client_built_takes_the_security_options(path):
    for call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
        name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
        spread = [kw.value for kw in call.keywords if kw.arg is None]  # **options
        if name in CLIENTS:
            assert spread, f"{path.name}:{call.lineno}: {name}(...) without **kafka_options(settings)"
        if name == "App" and any(kw.arg == "broker" for kw in call.keywords):
            assert any(kw.arg == "broker_credentials" for kw in call.keywords), f"{path.name}:{call.lineno}"
        if name == "from_url" and call.args and "redis" in ast.unparse(call.func):
            assert spread, f"{path.name}:{call.lineno}: a Redis client without the settings' credentials"


def test_secrets_are_never_shown(tmp_path):
    settings = _secure(tmp_path, redis_password=SecretStr("r3dis"), api_token=SecretStr("t0ken"))
    shown = repr(settings) + str(settings.model_dump())
    assert "hunter2" not in shown
    assert "r3dis" not in shown
    assert "t0ken" not in shown
    assert masked_url("redis://:r3dis@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"


def test_standby_replicas_are_a_setting_off_by_default(tmp_path):
    assert create_app(Settings(data_dir=tmp_path)).conf.table_standby_replicas == 0
    assert create_app(Settings(data_dir=tmp_path / "b", standby_replicas=1)).conf.table_standby_replicas == 1
