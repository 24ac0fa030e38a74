"""``segmenter backup FILE`` and ``segmenter restore FILE`` (客户档案的备份和恢复).

A backup holds what cannot be derived again: every ruleset version applied (and the latest of each), overrides,
manual tags, profiles, each customer's stored record and each partition's entry (stream time, epoch, ruleset in
force), read from the workers' changelog topics, and the action workers' ledger, so that no grant is made twice.
It is read while workers run: a changelog holds what the workers made durable, customer by customer.

The archive is a gzipped tar: ``manifest.json`` (format, creation time, topic prefix, partitions, and the count and
SHA-256 of every other member) and one JSON-lines member per kind. ``restore`` checks the manifest and every
checksum before it writes anything, refuses an archive of another format, and refuses a stack that already holds
customers. It writes the changelogs, the rules and the operators' topics, and projects the customers into Redis;
workers started (or restarted) afterwards recover the state from the changelogs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.cli.common import CliError, load_settings
from streams.kafka.reading import latest_by_partition, true_ends
from streams.kafka.topics import Record, create_topics, produce_records
from streams.names import Names
from streams.progress import Progress
from streams.readmodel.writer import Projection
from streams.settings import Settings
from streams.stored import unpack
from streams.worker.flush import projected_row

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


def cmd_backup(args: argparse.Namespace) -> int:
    settings = load_settings()
    names = Names(settings.topic_prefix)
    members: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    for member, (topic, _) in _kinds(names).items():
        rows = asyncio.run(latest_by_partition(settings, topic))
        members[member] = b"".join(_line(p, k, v) for (p, k), v in rows.items())
        counts[member] = len(rows)
    manifest = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(), "topic_prefix": settings.topic_prefix,
                "partitions": settings.partitions, "members": {
                    name: {"records": counts[name], "sha256": hashlib.sha256(data).hexdigest()}
                    for name, data in members.items()}}
    path = Path(args.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, data in [("manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2)),
                           *((f"{m}.jsonl", d) for m, d in members.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(datetime.now(UTC).timestamp())
            archive.addfile(info, io.BytesIO(data))
    print(f"backup written to {path}: " + ", ".join(f"{counts[m]:,} {m}" for m in members))
    return 0


def read_archive(path: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The manifest and every member's rows, checked; a CliError saying what is wrong otherwise."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            files = {m.name: archive.extractfile(m) for m in archive.getmembers() if m.isfile()}
            data = {name: f.read() for name, f in files.items() if f is not None}
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise CliError(f"{path} is not a segmenter backup (not a readable .tar.gz: {exc})") from None
    try:
        manifest = orjson.loads(data["manifest.json"])
    except (KeyError, orjson.JSONDecodeError):
        raise CliError(f"{path} is not a segmenter backup (no readable manifest.json)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise CliError(f"{path} is not a backup this version reads (format {found!r}, expected {FORMAT!r})")
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, meta in manifest["members"].items():
        blob = data.get(f"{name}.jsonl")
        if blob is None or hashlib.sha256(blob).hexdigest() != meta["sha256"]:
            raise CliError(f"{path} is corrupt: {name}.jsonl is missing or does not match its checksum")
        rows[name] = [orjson.loads(line) for line in blob.splitlines() if line]
        if len(rows[name]) != meta["records"]:
            raise CliError(f"{path} is corrupt: {name}.jsonl holds {len(rows[name])} records, the manifest says "
                           f"{meta['records']}")
    return manifest, rows


def cmd_restore(args: argparse.Namespace) -> int:
    settings = load_settings()
    names = Names(settings.topic_prefix)
    manifest, rows = read_archive(Path(args.file))
    if manifest["partitions"] != settings.partitions:
        raise CliError(f"the backup has {manifest['partitions']} partitions, this stack {settings.partitions}: "
                       "set SEGMENTER_PARTITIONS to the backup's")
    asyncio.run(create_topics(settings))
    held = asyncio.run(true_ends(settings, [names.changelog(names.customers_table)]))
    if sum(held.values()):
        raise CliError("this stack already holds customers: restore into an empty stack (a new topic prefix, or "
                       "`segmenter down` and `up` for the embedded one)")
    kinds = _kinds(names)
    records: list[Record] = []
    for member, (topic, keep_partition) in kinds.items():
        for row in rows.get(member, []):
            records.append((topic, base64.b64decode(row["k"]), base64.b64decode(row["v"]),
                            row["p"] if keep_partition else None))
    total = asyncio.run(produce_records(settings, records, Progress("restore", len(records), unit="records")))
    projected = asyncio.run(_project(settings, rows.get("customers", []), rows.get("partitions", [])))
    print(f"restored {total:,} records from {args.file} (backup of {manifest['created_at']}): "
          + ", ".join(f"{len(rows.get(m, [])):,} {m}" for m in kinds) + f"; {projected:,} customers in Redis")
    print("start the workers (or restart them: `segmenter down` is not needed) so they recover from the changelogs")
    return 0


async def _project(settings: Settings, customers: list[dict[str, Any]], partitions: list[dict[str, Any]]) -> int:
    """The restored customers into Redis as the workers project them, with the partitions' clocks."""
    policy = settings.policy()
    clocks: dict[int, tuple[str, int]] = {}
    for row in partitions:
        meta = orjson.loads(base64.b64decode(row["v"]))
        if meta.get("stream_time"):
            stream_time = datetime.fromisoformat(meta["stream_time"])
            clocks[int(row["p"])] = (stream_time.isoformat(), policy.calendar.day(stream_time))
    projection = Projection(settings.redis_url, Names(settings.topic_prefix).redis, settings.story_changes,
                            **settings.redis_options())
    try:
        rows = []
        for row in customers:
            value, number = base64.b64decode(row["v"]), int(row["p"])
            clock = clocks.get(number)
            rows.append(projected_row(base64.b64decode(row["k"]).decode(), unpack(value), value, number=number,
                                      epoch=0, day=clock[1] if clock else None, policy=policy))
        await projection.write_many(rows, clocks)
        for number in range(settings.partitions):
            await projection.mark_projected(number, 0)
    finally:
        await projection.close()
    return len(customers)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="write what cannot be derived again (rules, overrides, tags, profiles, "
                                      "customers' state, the action ledger) to a checksummed archive")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_backup)
    p = sub.add_parser("restore", help="bring a backup back into an empty stack")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_restore)
