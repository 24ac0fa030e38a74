"""``segmenter backup FILE`` and ``segmenter restore FILE`` (客户档案的备份和恢复).

A backup holds what cannot be derived again: every ruleset version applied (and the latest of each), overrides,
manual tags, profiles, each customer's stored record and each partition's entry (stream time, epoch, ruleset in
force), read from the workers' changelog topics, and the action workers' ledger, so that no grant is made twice.
It is read while workers run: a changelog holds what the workers made durable, customer by customer.

The archive is a gzipped tar, written readable by its owner only: ``manifest.json`` first (format, creation time,
topic prefix, partitions, the count and SHA-256 of every other member, and with SEGMENTER_BACKUP_KEY an HMAC of it
all) and one JSON-lines member per kind, the erasure log among them. ``restore`` is in streams/cli/restore.py.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import io
import os
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.cli.common import load_settings
from streams.kafka.erasures import erasure_log
from streams.kafka.reading import latest_by_partition
from streams.names import Names
from streams.settings import Settings

FORMAT = "segmenter-backup/1"


def _kinds(names: Names) -> dict[str, tuple[str, bool]]:
    """member -> (topic, keep the partition): the topics a backup holds, latest record per key."""
    return {
        "rules-history": (names.rules_history, False), "rules": (names.rules, False),
        "overrides": (names.overrides, True), "tags": (names.tags, True), "profiles": (names.profiles, True),
        "customers": (names.changelog(names.customers_table), True),
        "partitions": (names.changelog(names.partitions_table), True),
        "action-ledger": (names.ledger_changelog, True),
    }


def _line(partition: int, key: bytes, value: bytes) -> bytes:
    return orjson.dumps({"p": partition, "k": base64.b64encode(key).decode(),
                         "v": base64.b64encode(value).decode()}) + b"\n"


ERASURES = "erasures"  # the erasure log's member: {"key": keyed hash, "at": epoch s} per line


def signature(settings: Settings, manifest: dict[str, Any]) -> str | None:
    """HMAC-SHA256 of the manifest (without its own ``hmac``) under SEGMENTER_BACKUP_KEY; None without a key. The
    manifest holds every member's SHA-256, so the signature covers the whole archive."""
    if settings.backup_key is None:
        return None
    body = orjson.dumps({k: v for k, v in manifest.items() if k != "hmac"}, option=orjson.OPT_SORT_KEYS)
    return hmac.new(settings.backup_key.get_secret_value().encode(), body, hashlib.sha256).hexdigest()


def write_backup(settings: Settings, path: Path) -> str:
    """Write the backup of the stack ``settings`` name to ``path`` (owner-only, through a ``.partial`` file);
    returns a sentence of what it holds."""
    names = Names(settings.topic_prefix)
    members: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    for member, (topic, _) in _kinds(names).items():
        rows = asyncio.run(latest_by_partition(settings, topic))
        members[member] = b"".join(_line(p, k, v) for (p, k), v in rows.items())
        counts[member] = len(rows)
    erased = asyncio.run(erasure_log(settings))
    members[ERASURES] = b"".join(orjson.dumps({"key": k, "at": at}) + b"\n" for k, at in sorted(erased.items()))
    counts[ERASURES] = len(erased)
    manifest: dict[str, Any] = {
        "format": FORMAT, "created_at": datetime.now(UTC).isoformat(), "topic_prefix": settings.topic_prefix,
        "partitions": settings.partitions, "members": {
            name: {"records": counts[name], "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in members.items()}}
    signed = signature(settings, manifest)
    if signed is not None:
        manifest["hmac"] = signed
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle, \
            tarfile.open(fileobj=handle, mode="w:gz") as archive:
        for name, data in [("manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2)),
                           *((f"{m}.jsonl", d) for m, d in members.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(datetime.now(UTC).timestamp()), 0o600
            archive.addfile(info, io.BytesIO(data))
    partial.replace(path)  # a backup cut short never takes the name of a whole one
    return (f"backup written to {path}{' (signed)' if signed else ''}: "
            + ", ".join(f"{counts[m]:,} {m}" for m in members))


def cmd_backup(args: argparse.Namespace) -> int:
    print(write_backup(load_settings(), Path(args.file)))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="write what cannot be derived again (rules, overrides, tags, profiles, "
                                      "customers' state, the action ledger, the erasure log) to a checksummed "
                                      "archive readable by its owner only")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_backup)
