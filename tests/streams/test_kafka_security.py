"""Kafka security settings reach every client segmenter builds (aiokafka consumers, producers, admin clients and
faust apps), and secrets are never shown."""

import ast
from pathlib import Path

import faust
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


def _clients(source: str, where: str) -> tuple[list[str], list[str]]:
    """Every Kafka client, faust app with a broker and Redis client ``source`` builds (as ``where:line name``), and
    those built without the settings' options."""
    built, bare = [], []
    for call in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)):
        name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
        spread = any(kw.arg is None for kw in call.keywords)  # **options
        keywords = {kw.arg for kw in call.keywords}
        if name in CLIENTS:
            ok = spread
        elif name == "App" and "broker" in keywords:
            ok = "broker_credentials" in keywords
        elif name == "from_url" and call.args and "redis" in ast.unparse(call.func):
            ok = spread
        else:
            continue
        built.append(f"{where}:{call.lineno} {name}")
        if not ok:
            bare.append(built[-1])
    return built, bare


def test_every_kafka_and_redis_client_built_takes_the_security_options():
    built, bare = [], []
    for path in sorted(STREAMS.rglob("*.py")):
        found, missing = _clients(path.read_text(encoding="utf-8"), str(path.relative_to(STREAMS)))
        built += found
        bare += missing
    kinds = {entry.rsplit(" ", 1)[1] for entry in built}
    assert kinds == {*CLIENTS, "App", "from_url"}, kinds  # the check sees every kind segmenter builds
    assert len(built) >= 10
    assert bare == []
    # and it does fail: a client without the options, a faust app without credentials, a Redis client bare
    _, caught = _clients("AIOKafkaProducer(bootstrap_servers='x')\nfaust.App('a', broker='kafka://x')\n"
                         "redis.Redis.from_url('redis://x')\nAIOKafkaConsumer(**kafka_options(s))\n", "probe.py")
    assert caught == ["probe.py:1 AIOKafkaProducer", "probe.py:2 App", "probe.py:3 from_url"]


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
