"""The contract: pydantic models of everything that crosses a topic or a file."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from schemas.events import NO_CONTROL, Interaction, ManualTag, Override, Profile, Transaction
from schemas.outputs import (
    ActionSuppressed,
    Alert,
    Coupon,
    CustomerErased,
    DeadLetter,
    Occasion,
    Published,
    SegmentChange,
    TagChange,
)
from schemas.ruleset import RuleSetApplied, RuleSetDocument

MODELS: dict[str, type[BaseModel]] = {
    "transaction": Transaction,
    "interaction": Interaction,
    "profile": Profile,
    "override": Override,
    "manual_tag": ManualTag,
    "ruleset": RuleSetDocument,
    "ruleset_applied": RuleSetApplied,
    "segment_change": SegmentChange,
    "tag_change": TagChange,
    "occasion": Occasion,
    "customer_erased": CustomerErased,
    "coupon": Coupon,
    "alert": Alert,
    "published": Published,
    "action_suppressed": ActionSuppressed,
    "dead_letter": DeadLetter,
}

JSON_DIR = Path(__file__).parent / "json"


def first_error(exc: ValidationError) -> str:
    """The first validation error as ``field.path: message`` (for logs, dead letters, bad rows)."""
    first = exc.errors()[0]
    message = first["msg"]
    if first["type"] == "string_pattern_mismatch" and first.get("ctx", {}).get("pattern") == NO_CONTROL:
        message = "must not contain control characters (newline, tab, escape, \\x1f …)"
    return f"{'.'.join(str(p) for p in first['loc'])}: {message}"


def json_schemas() -> dict[str, str]:
    """Each model's JSON Schema, rendered as the text of ``<name>.schema.json``."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(by_alias=True), indent=2, sort_keys=True)
        + "\n"
        for name, model in MODELS.items()
    }


__all__ = [
    "JSON_DIR",
    "MODELS",
    "ActionSuppressed",
    "Alert",
    "Coupon",
    "CustomerErased",
    "DeadLetter",
    "Interaction",
    "ManualTag",
    "Occasion",
    "Override",
    "Profile",
    "Published",
    "RuleSetApplied",
    "RuleSetDocument",
    "SegmentChange",
    "TagChange",
    "Transaction",
    "first_error",
    "json_schemas",
]
