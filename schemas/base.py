"""Base classes: inbound models tolerate unknown fields, outbound models forbid them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class InboundModel(BaseModel):
    """A document we consume: frozen, unknown fields ignored so producers can evolve."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


class OutboundModel(BaseModel):
    """A document we emit: frozen, unknown fields refused so our contract never drifts."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
