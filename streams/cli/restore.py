"""``segmenter restore FILE``: a backup (streams/cli/backup.py) back into an empty stack.

In order, with nothing written until every check passed:

1. The manifest, the archive's first member, read alone (1 MiB at most) and validated: its format, its partitions,
   the members it lists (known kinds, each with a count and a SHA-256), and with SEGMENTER_BACKUP_KEY its HMAC.
2. Every member the manifest lists, streamed once to check its size (SEGMENTER_BACKUP_MAX_BYTES), checksum and count;
   members it does not list are never read.
3. The stack: as many partitions as the backup, no customer yet (or an interrupted restore of this same backup, which
   is then done again from the start: every record restored is keyed, so writing it twice leaves one), no worker
   running (a running worker would go on with the state it holds, not the restored one).
4. The erasure log (this stack's topic and DATA_DIR/erasures.jsonl, and the archive's): a customer erased after the
   backup was taken is left out of every member, and every erasure goes into the partitions' entries and the log,
   so that no backup brings an erased customer back.
5. The members, streamed in chunks: the action ledger first (no customer is ever back without the record of what it
   was granted), then rules, operators' records, profiles, partitions and customers; the customers into Redis too.
6. A marker in Redis says the restore of this backup began and when it ended.

With the embedded stack, start it with ``segmenter up --no-workers``: ``segmenter restore`` (streams/cli/
stack_commands.py) then starts the workers, the action worker and the HTTP API, which open on the restored state.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import redis

from segmenter.privacy import erased_key
from streams.cli.backup import ERASURES, FORMAT, _kinds, signature
from streams.cli.common import CliError
from streams.kafka.erasures import erasure_log, log_erasure, merge
from streams.kafka.reading import true_ends
from streams.kafka.topics import Record, create_topics, produce_records
from streams.names import Names
from streams.progress import Progress
from streams.readmodel.writer import Projection
from streams.settings import Settings
from streams.stack.embedded import StackInfo
from streams.stored import unpack
from streams.worker.documents import projected_row

MAX_MANIFEST = 1024 * 1024
MAX_MEMBERS = 64
CHUNK = 5000
ORDER = ("action-ledger", "rules-history", "rules", "overrides", "tags", "profiles", "partitions", "customers")


@dataclass
class Archive:
    path: Path
    manifest: dict[str, Any]
    members: dict[str, tarfile.TarInfo]  # listed in the manifest, checked
    digest: str  # of the manifest: names this backup in the marker

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["created_at"])


@contextmanager
def _opened(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, "r:gz") as archive:
            yield archive
    except (OSError, tarfile.TarError, EOFError, ValueError) as exc:
        raise CliError(f"{path} is not a segmenter backup (not a readable .tar.gz: {exc})") from None


def _headers(archive: tarfile.TarFile, path: Path) -> dict[str, tarfile.TarInfo]:
    found: dict[str, tarfile.TarInfo] = {}
    while (info := archive.next()) is not None:
        if len(found) >= MAX_MEMBERS:
            raise CliError(f"{path} is not a segmenter backup (more than {MAX_MEMBERS} members)")
        if info.isfile():
            found.setdefault(info.name, info)
    return found


def _manifest(settings: Settings, path: Path, archive: tarfile.TarFile, info: tarfile.TarInfo | None
              ) -> tuple[dict[str, Any], str]:
    if info is None or info.size > MAX_MANIFEST:
        raise CliError(f"{path} is not a segmenter backup (no manifest.json of at most {MAX_MANIFEST:,} bytes)")
    raw = _read(archive, info).read()
    try:
        manifest = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CliError(f"{path} is not a segmenter backup (manifest.json is not JSON)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise CliError(f"{path} is not a backup this version reads (format {found!r}, expected {FORMAT!r})")
    known = {*_kinds(Names("")), ERASURES}
    members = manifest.get("members")
    problem = None
    if not isinstance(members, dict) or not members:
        problem = "it lists no members"
    elif unknown := sorted(set(members) - known):
        problem = f"it lists members this version does not know: {', '.join(map(repr, unknown[:5]))}"
    elif any(not isinstance(m, dict) or not isinstance(m.get("records"), int) or m["records"] < 0
             or not isinstance(m.get("sha256"), str) or len(m["sha256"]) != 64 for m in members.values()):
        problem = "a member has no record count or SHA-256"
    elif not isinstance(manifest.get("partitions"), int) or not isinstance(manifest.get("created_at"), str):
        problem = "it has no partitions or creation time"
    if problem:
        raise CliError(f"{path}: the manifest is not valid: {problem}")
    expected = signature(settings, manifest)
    if expected is not None and not hmac.compare_digest(str(manifest.get("hmac", "")), expected):
        raise CliError(f"{path}: the archive's signature does not match SEGMENTER_BACKUP_KEY (unsigned, signed with "
                       "another key, or changed since): refused")
    return manifest, hashlib.sha256(raw).hexdigest()


def _read(archive: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    handle = archive.extractfile(info)
    if handle is None:
        raise CliError(f"{info.name} cannot be read from the archive")
    return handle


def open_archive(settings: Settings, path: Path) -> Archive:
    """The manifest validated, then every member it lists checked by size, checksum and count, streamed."""
    with _opened(path) as archive:
        headers = _headers(archive, path)
        manifest, digest = _manifest(settings, path, archive, headers.get("manifest.json"))
        members: dict[str, tarfile.TarInfo] = {}
        for name, meta in manifest["members"].items():
            info = headers.get(f"{name}.jsonl")
            if info is None:
                raise CliError(f"{path} is corrupt: {name}.jsonl is missing")
            if info.size > settings.backup_max_bytes:
                raise CliError(f"{path}: {name}.jsonl is {info.size:,} bytes, more than SEGMENTER_BACKUP_MAX_BYTES "
                               f"({settings.backup_max_bytes:,})")
            sha, lines = hashlib.sha256(), 0
            handle = _read(archive, info)
            while block := handle.read(1 << 20):
                sha.update(block)
                lines += block.count(b"\n")
            if sha.hexdigest() != meta["sha256"]:
                raise CliError(f"{path} is corrupt: {name}.jsonl does not match its checksum")
            if lines != meta["records"]:
                raise CliError(f"{path} is corrupt: {name}.jsonl holds {lines} records, the manifest says "
                               f"{meta['records']}")
            members[name] = info
    return Archive(path, manifest, members, digest)


def _rows(archive: tarfile.TarFile, source: Archive, name: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(_read(archive, source.members[name]), 1):
        try:
            row = orjson.loads(line)
            if name != ERASURES:
                _decode(row, source.manifest["partitions"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise CliError(f"{source.path}: {name}.jsonl line {number}: not a backup record ({exc})") from None
        yield row


def _decode(row: dict[str, Any], partitions: int) -> None:
    row["k"], row["v"] = base64.b64decode(row["k"], validate=True), base64.b64decode(row["v"], validate=True)
    if not isinstance(row["p"], int) or not 0 <= row["p"] < partitions:
        raise ValueError(f"partition {row['p']!r} is not one of the backup's {partitions}")


def _customer_of(name: str, key: bytes) -> str | None:
    """The customer a member's record is of (None: a record of no customer)."""
    if name in ("customers", "profiles"):
        return key.decode(errors="replace")
    if name in ("overrides", "tags"):
        return key.split(b"\x1f", 1)[0].decode(errors="replace")
    if name == "action-ledger" and not key.startswith(b"\x00"):
        return key.decode(errors="replace")
    return None


def _marker_key(settings: Settings) -> str:
    return f"{Names(settings.topic_prefix).redis}:restore"


def _marker(settings: Settings) -> dict[bytes, bytes]:
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_options())
    try:
        return client.hgetall(_marker_key(settings))  # type: ignore[return-value]
    finally:
        client.close()


def _mark(settings: Settings, field: str, value: str) -> None:
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_options())
    try:
        client.hset(_marker_key(settings), field, value)
    finally:
        client.close()


def _check_stack(settings: Settings, source: Archive) -> StackInfo | None:
    """Refuse a stack the backup cannot go into; the embedded stack's record when there is one."""
    if source.manifest["partitions"] != settings.partitions:
        raise CliError(f"the backup has {source.manifest['partitions']} partitions, this stack {settings.partitions}: "
                       "set SEGMENTER_PARTITIONS to the backup's")
    info = StackInfo.load(Path(settings.data_dir) / "stack.json")
    running = [pid for pid in (info.worker_pid, info.actions_pid) if pid and info.ours(pid)] if info else []
    if running:
        raise CliError("workers are running on this stack and would go on with the state they hold, not the restored "
                       "one: `segmenter down`, `segmenter up --no-workers`, then restore (it starts the workers)")
    names = Names(settings.topic_prefix)
    asyncio.run(create_topics(settings))
    held = asyncio.run(true_ends(settings, [names.changelog(names.customers_table)]))
    if sum(held.values()):
        marker = _marker(settings)
        if marker.get(b"backup") != source.digest.encode() or marker.get(b"done"):
            raise CliError("this stack already holds customers: restore into an empty stack (a new topic prefix, or "
                           "`segmenter down` and `up --no-workers` for the embedded one)")
        print("resuming the interrupted restore of this same backup: every member is written again")
    return info


def _erasures(settings: Settings, source: Archive) -> dict[str, int]:
    """Every erasure known: the stack's log (topic and file) and the archive's."""
    found = asyncio.run(erasure_log(settings))
    if ERASURES in source.members:
        with _opened(source.path) as archive:
            merge(found, list(_rows(archive, source, ERASURES)))
    return found


async def _write(settings: Settings, source: Archive, erased: dict[str, int], drop: set[str]) -> dict[str, int]:
    """The members, in ``ORDER``, streamed in chunks; customers of ``drop`` (keyed hashes) left out."""
    names, secret = Names(settings.topic_prefix), settings.erasure_secret() or b""
    kinds = _kinds(names)
    total = sum(source.manifest["members"][m]["records"] for m in ORDER if m in source.members)
    progress = Progress("restore", total, unit="records")
    counts: dict[str, int] = {"left out (erased)": 0}
    clocks: dict[int, tuple[str, int]] = {}
    projection = Projection(settings.redis_url, names.redis, settings.story_changes, **settings.redis_options())
    done = 0
    try:
        with _opened(source.path) as archive:
            for name in (m for m in ORDER if m in source.members):
                topic, keep_partition = kinds[name]
                chunk: list[dict[str, Any]] = []
                counts[name] = 0
                for row in _rows(archive, source, name):
                    done += 1
                    customer = _customer_of(name, row["k"])
                    if customer is not None and drop and erased_key(customer, secret) in drop:
                        counts["left out (erased)"] += 1
                        continue
                    if name == "partitions":
                        row["v"] = _with_erasures(row, erased, clocks, settings)
                    chunk.append(row)
                    if len(chunk) >= CHUNK:
                        await _send(settings, projection, name, chunk, topic=topic, keep_partition=keep_partition,
                            clocks=clocks)
                        counts[name] += len(chunk)
                        chunk = []
                        progress.update(done)
                await _send(settings, projection, name, chunk, topic=topic, keep_partition=keep_partition,
                            clocks=clocks)
                counts[name] += len(chunk)
        for number in range(settings.partitions):
            await projection.mark_projected(number, 0)
    finally:
        progress.close()
        await projection.close()
    return counts


def _with_erasures(row: dict[str, Any], erased: dict[str, int], clocks: dict[int, tuple[str, int]],
                   settings: Settings) -> bytes:
    """A partition's entry with every known erasure in it (older events replayed stay ignored), and its clock."""
    meta = orjson.loads(row["v"])
    if erased:
        merged = dict(meta.get("erased") or {})
        for key, at in erased.items():
            merged[key] = max(at, merged.get(key, at))
        meta["erased"] = merged
    if meta.get("stream_time"):
        stream_time = datetime.fromisoformat(meta["stream_time"])
        clocks[int(row["p"])] = (stream_time.isoformat(), settings.policy().calendar.day(stream_time))
    return orjson.dumps(meta)


async def _send(settings: Settings, projection: Projection, name: str, rows: list[dict[str, Any]], *,
                topic: str, keep_partition: bool, clocks: dict[int, tuple[str, int]]) -> None:
    if not rows:
        return
    records: list[Record] = [(topic, row["k"], row["v"], row["p"] if keep_partition else None) for row in rows]
    await produce_records(settings, records)
    if name == "customers":  # into Redis as the workers project them
        policy = settings.policy()
        projected = []
        for row in rows:
            number, clock = int(row["p"]), clocks.get(int(row["p"]))
            projected.append(projected_row(row["k"].decode(), unpack(row["v"]), row["v"], number=number, epoch=0,
                                           day=clock[1] if clock else None, policy=policy))
        await projection.write_many(projected, clocks)


def restore(settings: Settings, path: Path) -> tuple[StackInfo | None, str]:
    """Restore the backup at ``path`` (the steps in this module's docstring); returns the embedded stack's record
    (None: not the embedded stack) and a sentence of what was restored. Starts nothing."""
    source = open_archive(settings, path)
    info = _check_stack(settings, source)
    erased = _erasures(settings, source)
    since = int(source.created_at.timestamp())  # erasure times are whole seconds: the same second counts as after
    drop = {key for key, at in erased.items() if at >= since}
    if erased and settings.erasure_key is None:
        raise CliError(f"the erasure log holds {len(erased):,} erasure(s) and no SEGMENTER_ERASURE_KEY is set to "
                       "re-apply them: set the key the erasures were made with")
    _mark(settings, "backup", source.digest)
    _mark(settings, "began", datetime.now(UTC).isoformat())
    counts = asyncio.run(_write(settings, source, erased, drop))
    local = asyncio.run(erasure_log(settings))
    for key, at in erased.items():  # the restored stack keeps every erasure, those of the archive too
        if local.get(key) != at:
            asyncio.run(log_erasure(settings, key, datetime.fromtimestamp(at, UTC)))
    _mark(settings, "done", datetime.now(UTC).isoformat())
    said = (f"restored {path} (backup of {source.manifest['created_at']}): "
            + ", ".join(f"{n:,} {m}" for m, n in counts.items()))
    return info, said
