"""The ruleset document (compacted topic, key = ruleset id), as written in YAML."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.base import OutboundModel

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]


class SegmentRule(OutboundModel):
    """One segment of a dimension: its name and the condition that puts a customer in it."""

    name: Name
    when: Annotated[str, Field(min_length=1)]


class Dimension(OutboundModel):
    """An ordered list of segments (first match wins) and the default when none matches."""

    segments: Annotated[list[SegmentRule], Field(min_length=1)]
    default: Name


class RuleSetDocument(OutboundModel):
    """A versioned set of classification dimensions."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)]
    version: Annotated[int, Field(ge=1)]
    description: str = ""
    dimensions: Annotated[dict[Name, Dimension], Field(min_length=1)]
