"""The one settings object: read once from ``SEGMENTER_*`` variables in the entry point."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.events import AMOUNT_LIMIT
from segmenter.actions import duration_s
from segmenter.policy import MAX_AMOUNT, Policy
from segmenter.timebase import WindowSpec

MAX_MINOR = 10**16  # one amount in minor units: 922 of them still fit a signed 64-bit counter


class Settings(BaseSettings):
    """Configuration of every segmenter process (see the README's table)."""

    model_config = SettingsConfigDict(env_prefix="SEGMENTER_", frozen=True, extra="ignore")

    timezone: str = Field("UTC", description="Business timezone that days are counted in.")
    long_window: str = Field("12m", description="Window behind the *_12m metrics: 12m or 365d style.")
    short_window: str = Field("6m", description="Window behind the *_6m metrics.")
    money_scale: int = Field(2, ge=0, le=6, description="Decimal places of the currency's minor unit.")
    max_amount: Decimal = Field(
        MAX_AMOUNT, gt=0, lt=AMOUNT_LIMIT, description="Largest amount of one transaction (major units); larger "
        "ones go to dead letters, so per-customer and per-segment sums stay exact 64-bit integers.")
    max_categories: int = Field(20, ge=1, le=1000, description="Product categories kept by name per customer (those "
                                "of the greatest amount in the window); the rest count together as '(other)'.")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects (workers, action workers, the API, the CLI).")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism with SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_username: str | None = Field(None, description="SASL user.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (never logged or printed).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA certificates to trust (PEM), with SSL or SASL_SSL.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (PEM), for mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(None, description="The client certificate's key (PEM).")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis of the read model (rediss:// for TLS); "
                           "keep the password out of it: SEGMENTER_REDIS_PASSWORD.")
    redis_username: str | None = Field(None, description="Redis ACL user (Redis 6+).")
    redis_password: SecretStr | None = Field(None, description="Redis password (AUTH; never logged or printed).")
    redis_ssl_cafile: Path | None = Field(None, description="CA certificates to trust for rediss:// (PEM).")
    data_dir: Path = Field(Path("var"), description="Worker state (RocksDB) and embedded stack files.")
    partitions: int = Field(8, ge=1, description="Partitions of every data topic when created.")
    topic_prefix: str = Field("segmenter.", description="Prefix of every topic name.")
    clock: Literal["wall", "event"] = Field(
        "wall", description="wall: stream time also follows the wall clock; event: only events and ticks.")
    tick_interval_s: float = Field(30.0, gt=0, description="How often the wall clock ticks in wall mode.")
    future_skew: str = Field("1d", description="Events further ahead of the wall clock go to dead letters.")
    session_timeout_s: float = Field(
        6.0, gt=0, description="Kafka group session and rebalance timeout: a dead worker's partitions move after it "
        "(and on a broker that ignores LeaveGroup, like the embedded one, a stopped worker's too). 6 is Apache "
        "Kafka's default group.min.session.timeout.ms.")
    instance_id: str | None = Field(
        None, min_length=1, max_length=249, description="Static group membership (Kafka's group.instance.id, "
        "KIP-345): a worker restarted with the same id takes its partitions back at once instead of waiting out "
        "its dead predecessor's session. Give each worker its own stable id (a StatefulSet pod name); never two "
        "live workers the same one.")
    consistency_check: bool = Field(
        True, description="faust's recovery offset check; the embedded broker needs it off.")
    fetch_max_wait_ms: int = Field(
        10, ge=1, le=5000, description="Longest a fetch waits for data; on the embedded broker it adds to latency, "
        "on Apache Kafka 500 is fine (docs/throughput.md).")
    fetch_idle_wait_ms: int = Field(
        100, ge=1, le=5000, description="Longest a fetch waits for data once five fetches in a row brought none "
        "(the input idle, as during a rules change); the first fetch that brings a record goes back to "
        "fetch_max_wait_ms. An idle worker polls the broker a tenth as often; fetch_max_wait_ms or less turns it off "
        "(docs/throughput.md).")
    flush_interval_s: float = Field(
        0.5, gt=0, description="Longest time between state flushes (changelog, store, Redis, offset commit).")
    flush_max_dirty: int = Field(
        8000, ge=1, description="Flush early once this many customers changed; bigger flushes write a busy "
        "customer fewer times (docs/throughput.md).")
    max_poll_records: int = Field(
        4000, ge=100, description="Most input records the worker takes in one fetched batch. Smaller batches let a "
        "worker wait for its flush in flight sooner (bounding what a kill loses and each flush's size); a fetch "
        "left unbounded handed over some 40,000 records at once on the embedded broker.")
    store_compression: Literal["zstd", "snappy"] = Field(
        "zstd", description="Compression of the worker's RocksDB stores: zstd on 16 KiB blocks (smaller on disk) "
        "or snappy on 4 KiB blocks (faust's and RocksDB's default; a little less CPU).")
    state_cache_customers: int = Field(
        30_000, ge=1000, description="Decoded customer records kept in memory (the least recently changed are "
        "dropped and read back from RocksDB when needed): the bound on a worker's memory (docs/peers.md).")
    story_changes: int = Field(
        5, ge=0, le=100, description="Last segment and tag changes kept per customer in Redis for `segmenter "
        "customer` (a capped Redis list per customer); 0 keeps none.")
    population_interval_s: float = Field(
        5.0, gt=0, description="How often a worker publishes its partitions' population summaries and adopts the "
        "merged ranks (ABC, RFM): ranks in force are at most about two intervals old.")
    population_buckets: int = Field(
        1000, ge=10, le=100_000, description="Buckets of a partition's summary of a ranked value with many distinct "
        "values (amount_12m): a rank is off by at most 50 / buckets percentage points (0.05 with 1000). Values "
        "with at most this many distinct values (purchases_12m, the last purchase day) are counted exactly.")
    population_hysteresis: float = Field(
        1.0, ge=0, le=20, description="The band, in rank percentage points, within which a customer keeps a "
        "class that reads population ranks (no A -> B -> A as others buy); 0: none.")
    api_host: str = Field("127.0.0.1", description="Where `segmenter api` listens (127.0.0.1: this machine only).")
    api_port: int = Field(8080, ge=1, le=65535, description="The HTTP API's port.")
    api_token: SecretStr | None = Field(
        None, description="Bearer token the HTTP API requires for changes (overrides, rules), and for reads when "
        "they are closed; at least 16 characters (an empty or shorter one stops the API at start); unset: changes "
        "are refused. Never logged or printed.")
    api_tokens: SecretStr | None = Field(
        None, description="Named tokens with a role each (权限管理), comma-separated `name:role:token`; roles: viewer "
        "(reads), operator (reads, overrides), admin (everything, rules included). A change records the token's "
        "name as its author. SEGMENTER_API_TOKEN, when set too, is the token of `admin` with role admin. Tokens "
        "at least 16 characters; never logged or printed.")
    api_token_for_reads: bool | None = Field(
        None, description="Require the token for reads too; unset: required whenever SEGMENTER_API_HOST is not a "
        "loopback address.")
    api_allowed_hosts: str = Field(
        "", description="Comma-separated Host header names the API answers (against DNS rebinding); empty: "
        "localhost, 127.0.0.1, ::1 and SEGMENTER_API_HOST. '*' answers any (behind a proxy that checks it).")
    api_max_body_bytes: int = Field(
        1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest request body the API reads; larger "
        "ones get 413 unread.")
    erasure_key: SecretStr | None = Field(
        None, description="Secret key of the hash by which erased customers are remembered (so that no one can "
        "recover an erased id from a backup by trying ids): at least 16 characters, the same on every worker and "
        "wherever `segmenter erase` and `restore` run, never changed (a new key forgets which customers older "
        "erasures protect). Make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`. Unset: "
        "erasure is refused.")
    backup_key: SecretStr | None = Field(
        None, description="Key of the HMAC that `segmenter backup` signs an archive's manifest with and `restore` "
        "checks (an unsigned or forged archive is then refused). Unset: archives are checked for corruption only.")
    backup_max_bytes: int = Field(
        8 * 1024**3, ge=1024, description="Largest member of an archive `segmenter restore` reads (a member's "
        "size is read from its header, before its content).")
    metrics_port: int = Field(
        0, ge=0, le=65535, description="Port of the Prometheus metrics of a worker or action worker (0: not "
        "served); give each process on one machine its own.")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics are served on.")
    standby_replicas: int = Field(
        0, ge=0, le=3, description="Standby copies of each table partition kept by other workers (faust's "
        "table_standby_replicas). 0: a partition that moves is restored from its changelog; each standby makes "
        "every worker replay the other workers' changelogs record by record (docs/throughput.md).")
    hold_without_rules: int = Field(
        200_000, ge=0, description="Input records held (not yet processed or committed) while a partition has no "
        "ruleset yet, so none is folded in unclassified; past this many the worker goes on without one.")
    gc_full_every_s: float = Field(
        0.0, ge=0, description="How often a worker (and an action worker) runs a full garbage collection (each "
        "pauses it for a while in proportion to what it holds in memory); 0: never (streams/collector.py).")
    gc_young_every_s: float = Field(
        30.0, ge=0, description="How often a worker collects the objects allocated since its last flush (an action "
        "worker: batch) before freezing them (cyclic garbage among them is freed); at the other flushes they are "
        "frozen uncollected; 0: at every flush (streams/collector.py).")
    gc_full_growth: float = Field(
        1.0, ge=0, description="A full garbage collection whenever the objects a worker keeps have grown by this "
        "share since the last one (1.0: doubled; looked at every 10 s), so cyclic garbage (tracebacks of retried "
        "errors) stays bounded by what is live; 0: only on gc_full_every_s (streams/collector.py).")
    malloc_arenas: int = Field(
        2, ge=0, le=64, description="glibc malloc arenas of a worker process (RocksDB's threads each kept one with "
        "its freed memory); 0: glibc's default, eight per core.")
    malloc_trim_every_s: float = Field(
        5.0, ge=0, description="How often a worker gives memory malloc holds free back to the system (measured: "
        "RSS 600 -> 496 MiB after 1,000,000 events); 0: never.")
    on_error: Literal["dead-letter", "crash"] = Field(
        "dead-letter", description="When applying a record raises (a defect, not bad input): dead-letter sends it "
        "to dead letters as a processing_error and goes on; crash stops the worker there (for debugging).")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Level of segmenter's own log lines: lifecycle (partitions opened, rules adopted, ready) "
        "at info, trouble at warning and error. faust's and the clients' lines follow --loglevel (SEGMENTER_LOGLEVEL, "
        "warn by default).")
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object per line (ts, level, logger, message, process, exc).")
    wrong_partition: Literal["reroute", "dead-letter"] = Field(
        "reroute", description="An input record on another partition than murmur2 of its customer id gives (a "
        "producer with another partitioner: librdkafka's default is CRC32): reroute produces it again to the right "
        "partition; dead-letter sends it to dead letters with reason wrong_partition.")
    failpoint: str = Field(
        "", description="Tests only: 'mid-batch:N', 'before-persist:N' or 'before-commit:N' makes the worker "
        "SIGKILL itself after N records, or at its Nth flush after Redis / after the changelog; 'process-error:N' "
        "makes applying the Nth record raise.")
    actions_enabled: bool = Field(
        True, description="false: the action worker records transitions but grants nothing (for backfills).")
    actions_replay_horizon: str = Field(
        "3d", description="Changes whose stream time was older than this behind the wall clock when the worker "
        "emitted them grant nothing (history being imported); a change that waits in the topic while the action "
        "worker is down keeps its grant. 0d switches the horizon off.")
    actions_key_ttl_s: int = Field(
        400 * 86400, ge=60, description="How long Redis keeps each action's idempotency key.")
    web_port: int = Field(6066, description="faust's web port, bound to 127.0.0.1.")

    @model_validator(mode="after")
    def _amounts_fit(self) -> Settings:
        if self.max_amount.scaleb(self.money_scale) > MAX_MINOR:
            raise ValueError(f"max_amount {self.max_amount} at money_scale {self.money_scale} is more than 10^16 "
                             "minor units: a segment's sum could overflow Redis' 64-bit counters; lower max_amount")
        return self

    @field_validator("erasure_key")
    @classmethod
    def _erasure_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("SEGMENTER_ERASURE_KEY must be at least 16 characters (make one with `python -c 'import "
                             "secrets; print(secrets.token_urlsafe(32))'`)")
        return value

    def erasure_secret(self) -> bytes | None:
        """The erasure key as the hash's key (32 bytes), None when unset."""
        if self.erasure_key is None:
            return None
        return hashlib.sha256(self.erasure_key.get_secret_value().encode()).digest()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'Asia/Shanghai'") from None
        return value

    @field_validator("long_window", "short_window", "future_skew")
    @classmethod
    def _window(cls, value: str) -> str:
        WindowSpec.parse(value)
        return value

    @field_validator("actions_replay_horizon")
    @classmethod
    def _duration(cls, value: str) -> str:
        duration_s(value)
        return value

    @property
    def future_skew_days(self) -> int:
        spec = WindowSpec.parse(self.future_skew)
        return spec.count * (31 if spec.unit == "m" else 1)

    def redis_options(self) -> dict[str, object]:
        """Keyword arguments of every Redis client (with ``from_url(redis_url)``): credentials and TLS."""
        options: dict[str, object] = {}
        if self.redis_username:
            options["username"] = self.redis_username
        if self.redis_password is not None:
            options["password"] = self.redis_password.get_secret_value()
        if self.redis_ssl_cafile is not None:
            options["ssl_ca_certs"] = str(self.redis_ssl_cafile)
        return options

    def policy(self) -> Policy:
        return Policy(
            timezone=ZoneInfo(self.timezone),
            long_window=WindowSpec.parse(self.long_window),
            short_window=WindowSpec.parse(self.short_window),
            money_scale=self.money_scale,
            max_amount=self.max_amount,
            max_categories=self.max_categories,
        )


def settings_table() -> str:
    """Every setting as a Markdown table (the README's, which a test holds to this): variable, default, meaning."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |",
            "| `SEGMENTER_COMPILED` | `1` | 0: run the interpreted hot path even where a current compiled build exists "
            "(read at import, before the settings). |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = ("unset" if default is None else "(empty)" if default == "" else
                 f"`{default.value if hasattr(default, 'value') else default}`")
        text = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `SEGMENTER_{name.upper()}` | {shown} | {text} |")
    return "\n".join(rows) + "\n"
