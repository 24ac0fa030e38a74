"""Forged, broken and hostile archives are refused by ``restore`` in one sentence before anything is written (no
broker needed: the archive is checked first). A restore on the live stack is in tests/integration/test_backup.py."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from streams.cli.backup import FORMAT, signature
from streams.cli.common import CliError
from streams.cli.restore import MAX_MEMBERS, open_archive
from streams.settings import Settings

CUSTOMERS = b'{"p":0,"k":"QQ==","v":"e30="}\n'


def settings(**changes: Any) -> Settings:
    return Settings(partitions=4, **changes)


def manifest_for(members: dict[str, bytes], **extra: Any) -> dict[str, Any]:
    return {"format": FORMAT, "created_at": "2026-12-01T00:00:00+00:00", "topic_prefix": "", "partitions": 4,
            "members": {name: {"records": data.count(b"\n"), "sha256": hashlib.sha256(data).hexdigest()}
                        for name, data in members.items()}, **extra}


def write(path: Path, manifest: Any, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        raw = manifest if isinstance(manifest, bytes) else orjson.dumps(manifest)
        for name, data in [("manifest.json", raw), *((f"{m}.jsonl", d) for m, d in members.items())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def refused(path: Path, said: str, s: Settings | None = None) -> None:
    with pytest.raises(CliError, match=said):
        open_archive(s or settings(), path)


def test_a_well_formed_archive_is_read(tmp_path):
    members = {"customers": CUSTOMERS}
    archive = open_archive(settings(), write(tmp_path / "ok.tar.gz", manifest_for(members), members))
    assert set(archive.members) == {"customers"}


@pytest.mark.parametrize(("manifest", "said"), [
    ({"format": FORMAT, "partitions": 4, "created_at": "2026-12-01T00:00:00+00:00"}, "lists no members"),
    ({"format": FORMAT, "partitions": 4, "created_at": "x", "members": {}}, "lists no members"),
    ({"format": FORMAT, "partitions": 4, "created_at": "x", "members": {"../../etc/passwd": {}}},
     "members this version does not know"),
    ({"format": FORMAT, "partitions": 4, "created_at": "x", "members": {"customers": {"records": 1}}},
     "no record count or SHA-256"),
    ({"format": FORMAT, "members": {"customers": {"records": 1, "sha256": "0" * 64}}}, "no partitions"),
    ({"format": "segmenter-backup/9"}, "not a backup this version reads"),
    ([1, 2], "not a backup this version reads"),
    (b"{not json", "manifest.json is not JSON"),
])
def test_a_manifest_that_is_not_valid_is_refused_before_any_member_is_read(tmp_path, manifest, said):
    refused(write(tmp_path / "bad.tar.gz", manifest, {"customers": CUSTOMERS}), said)


def test_a_manifest_over_its_limit_is_refused_unread(tmp_path):
    refused(write(tmp_path / "big.tar.gz", b" " * (1024 * 1024 + 1), {}), "no manifest.json of at most")


def test_a_member_that_differs_from_the_manifest_is_refused(tmp_path):
    listed = manifest_for({"customers": CUSTOMERS})
    refused(write(tmp_path / "c.tar.gz", listed, {"customers": CUSTOMERS.replace(b"QQ", b"Qg")}),
            "customers.jsonl does not match its checksum")
    refused(write(tmp_path / "m.tar.gz", listed, {}), "customers.jsonl is missing")


def test_a_member_the_manifest_does_not_list_is_never_read(tmp_path):
    members = {"customers": CUSTOMERS}
    path = write(tmp_path / "extra.tar.gz", manifest_for(members), {**members, "profiles": b"\x00garbage\n"})
    assert set(open_archive(settings(), path).members) == {"customers"}


def test_a_member_over_the_size_limit_is_refused_by_its_header(tmp_path):
    big = CUSTOMERS * 200
    path = write(tmp_path / "big.tar.gz", manifest_for({"customers": big}), {"customers": big})
    refused(path, "more than SEGMENTER_BACKUP_MAX_BYTES", settings(backup_max_bytes=1024))


def test_an_archive_of_too_many_members_is_refused(tmp_path):
    members = {f"x{i}": b"" for i in range(MAX_MEMBERS + 1)}
    refused(write(tmp_path / "many.tar.gz", manifest_for({"customers": CUSTOMERS}), members), "more than 64 members")


def test_junk_is_not_an_archive(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(gzip.compress(b"not a tar at all" * 100))
    refused(tmp_path / "junk.tar.gz", "is not a segmenter backup")


def test_with_a_backup_key_an_unsigned_or_forged_archive_is_refused(tmp_path):
    keyed = settings(backup_key=SecretStr("backup-key-0123456789"))
    members = {"customers": CUSTOMERS}
    unsigned = manifest_for(members)
    refused(write(tmp_path / "u.tar.gz", unsigned, members), "signature does not match", keyed)
    signed = {**unsigned, "hmac": signature(keyed, unsigned)}
    assert open_archive(keyed, write(tmp_path / "s.tar.gz", signed, members)).members
    forged_members = {"customers": CUSTOMERS.replace(b"QQ", b"Qg")}  # a customer changed, checksums made again
    forged = {**manifest_for(forged_members), "hmac": signed["hmac"]}
    refused(write(tmp_path / "f.tar.gz", forged, forged_members), "signature does not match", keyed)
    other = settings(backup_key=SecretStr("another-key-0123456789"))
    refused(tmp_path / "s.tar.gz", "signature does not match", other)
