"""The HTTP API on the real broker and Redis, served by uvicorn: reads (a customer's story, segments with shares,
members a page at a time, tags), changes behind the bearer token (overrides, rulesets), JSON errors, readiness."""

from __future__ import annotations

from pydantic import SecretStr

from streams.readmodel.reader import ReadModel
from tests.integration.helpers import ROOT, serving, wait_until

CRM = ROOT / "examples" / "rules" / "crm.yaml"
TOKEN = "s3cret-s3cret-s3cret"  # noqa: S105 (a test token)
ALICE = "alice-operator-token-0001"
PROFILES = """customer_id,customer_type,industry,region
A,enterprise,manufacturing,north
B,individual,retail,north
C,individual,,east
"""
TX = """customer_id,occurred_at,amount,kind,event_id
A,2026-06-01,100,,a1
B,2026-06-10,200,,b1
C,2026-06-20,300,,c1
"""


def test_reads_changes_behind_the_token_and_json_errors(system, tmp_path, capsys):
    assert system.run("rules", "apply", str(CRM)) == 0
    system.start_worker()
    (tmp_path / "p.csv").write_text(PROFILES)
    (tmp_path / "tx.csv").write_text(TX)
    assert system.run("import", "profiles", str(tmp_path / "p.csv"), "--quiet") == 0
    assert system.run("import", "transactions", str(tmp_path / "tx.csv"), "--quiet") == 0
    assert system.run("tick", "--to", "2026-06-30") == 0
    assert system.run("wait", "--timeout", "120") == 0
    settings = system.settings.model_copy(update={"api_token": SecretStr(TOKEN),
                                                   "api_tokens": SecretStr(f"alice:operator:{ALICE}")})
    with serving(settings) as api:
        assert api.get("/health").json() == {"status": "ok"}
        ready = api.get("/ready")
        assert (ready.status_code, ready.json()) == (200, {"ready": True})  # no hosts or topics without the token
        ready = api.get("/ready", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ready.json()["checks"]["redis"] == "ok"

        a = api.get("/customers/A").json()
        assert a["segments"] == {"value": "low_value", "lifecycle": "new", "交易趋势": "交易平稳"}
        assert [t["tag"] for t in a["tags"]] == ["industry:manufacturing", "region:north"]
        assert a["dimensions"][0]["rejected"]  # why not each earlier segment
        assert a["recent_changes"][0]["change_id"]
        missing = api.get("/customers/nobody")
        assert (missing.status_code, missing.json()) == (404, {"error": "customer 'nobody' is not known"})

        rows = api.get("/segments").json()
        assert sum(r["customers"] for r in rows["value"]) == 3
        assert rows["value"][-1]["cumulative_share"] == 100.0
        assert abs(rows["value"][-1]["cumulative_amount_share"] - 100.0) < 1e-9

        members, cursor = [], None
        while True:  # a page at a time
            page = api.get("/segments/lifecycle/new/members", params={"limit": 1, **({"cursor": cursor} if cursor
                                                                                         else {})}).json()
            members += page["members"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(members) == ["A", "B", "C"]
        assert api.get("/tags/region:north/members").json()["members"] == ["A", "B"]
        moved = api.get("/movement", params={"since": "30d"}).json()["moves"]
        assert sum(m["customers"] for m in moved if m["dimension"] == "value") == 3  # first classifications
        assert api.get("/movement", params={"since": "soon"}).status_code == 400
        assert api.get("/segments/value/low_value/members", params={"cursor": "x"}).status_code == 400

        pin = {"customer_id": "A", "dimension": "value", "segment": "high_value", "reason": "key account"}
        assert api.post("/overrides", json=pin).status_code == 401
        assert api.post("/overrides", json=pin, headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": f"Bearer {ALICE}"}  # an operator: pins, and applies no rules
        bad = api.post("/overrides", json={**pin, "segment": "platinum"}, headers=auth)
        assert bad.status_code == 422
        assert "dimension value has no segment 'platinum'" in bad.json()["error"]
        incomplete = api.post("/overrides", json={k: v for k, v in pin.items() if k != "reason"}, headers=auth)
        assert (incomplete.status_code, incomplete.json()["error"]) == (422, "reason: Field required")
        assert api.post("/overrides", json=pin, headers=auth).status_code == 202
        assert system.run("wait", "--timeout", "120") == 0
        wait_until(lambda: api.get("/customers/A").json()["segments"]["value"], lambda v: v == "high_value", 30,
                   "the override applied")
        capsys.readouterr()
        assert system.run("override", "list") == 0
        pinned = capsys.readouterr().out.splitlines()[1].split()
        assert pinned[:5] == ["A", "value", "high_value", "-", "alice"]  # the token's name: the request gave none
        cleared = api.delete("/overrides/A/value", params={"reason": "done"}, headers=auth)
        assert cleared.status_code == 202
        assert system.run("wait", "--timeout", "120") == 0
        wait_until(lambda: api.get("/customers/A").json()["segments"]["value"], lambda v: v == "low_value", 30,
                   "the override cleared")

        assert api.post("/rules", content=CRM.read_bytes(), headers=auth).status_code == 403  # not an admin
        auth = {"Authorization": f"Bearer {TOKEN}"}  # SEGMENTER_API_TOKEN: the admin
        broken = api.post("/rules", content=b"id: x\nversion: 1\ndimensions: [",
                          headers=auth)
        assert broken.status_code == 422
        assert "request body:3:" in broken.json()["error"]
        candidate = CRM.read_text().replace("version: 1", "version: 2")
        dry = api.post("/rules", params={"dry_run": "true"}, content=candidate.encode(),
                       headers=auth)
        assert (dry.status_code, dry.json()["accepted"]) == (202, False)
        clash = api.post("/rules", content=candidate.replace("10000", "9000").encode()
                         .replace(b"version: 2", b"version: 1"), headers=auth)
        assert clash.status_code == 409
        assert "never rewritten" in clash.json()["error"]
        assert api.get("/openapi.json").json()["info"]["title"] == "segmenter"

    closed = system.settings.model_copy(update={"api_token": SecretStr(TOKEN), "api_token_for_reads": True})
    with serving(closed) as api:
        assert api.get("/customers/A").status_code == 401
        assert api.get("/customers/A", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert ReadModel.of(system.settings).count() == 3
