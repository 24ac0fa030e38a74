"""Outbound documents: segment changes, actions, dead letters."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, TypeAdapter

from schemas.base import OutboundModel

# recovery: a worker restarted from a saved state older than the changes published before it stopped, and the
# replay took another path; the change brings the topic back to the saved state.
Cause = Literal["event", "time", "rules", "override", "population", "erasure", "recovery"]
MetricValue = int | Decimal | str | None


class SegmentChange(OutboundModel):
    """A customer moved from one segment to another in one dimension, and why."""

    type: Literal["segment_change"] = "segment_change"
    change_id: str = Field(description="Deterministic: the same cause always yields the same id.")
    customer_id: str
    dimension: str
    from_segment: str | None = Field(alias="from", description="None for a first classification.")
    to_segment: str | None = Field(alias="to", description="None: the dimension left, its ruleset no longer in force "
                                   "(`segmenter rules retire`); it fires no action.")
    ruleset_id: str
    ruleset_version: int
    cause: Cause
    condition: str = Field(description="The condition that matched, as written in the ruleset.")
    metrics: dict[str, MetricValue] = Field(description="The values that decided it.")
    explanation: list[str] = Field(default_factory=list, description="Why earlier segments did not match.")
    stream_time: AwareDatetime
    event_id: str | None = Field(None, description="The event that caused it (cause 'event').")
    profile: dict[str, str | None] = Field(
        default_factory=dict, description="The customer's profile attributes then (for action routing).")
    amount_12m: Decimal | None = Field(None, description="The customer's amount_12m then (movement reports sum it).")


TagCause = Literal["event", "time", "rules", "manual", "population", "erasure", "recovery"]


class TagChange(OutboundModel):
    """A tag added to or removed from a customer (on the segment-changes topic, a distinct ``type``)."""

    type: Literal["tag_change"] = "tag_change"
    change_id: str = Field(description="Deterministic: the same cause always yields the same id.")
    customer_id: str
    tag: str
    added: bool = Field(description="True: the customer has the tag now; False: no longer.")
    ruleset_id: str
    ruleset_version: int
    cause: TagCause = Field(description="manual: added or removed by hand (`segmenter tag`); else as for segments.")
    condition: str = Field(description="Why: the tag's condition as written, the profile attribute it copies, or "
                           "who tagged by hand and why.")
    metrics: dict[str, MetricValue] = Field(default_factory=dict, description="The values the condition read.")
    stream_time: AwareDatetime
    event_id: str | None = Field(None, description="The event that caused it (cause 'event' or 'manual').")


class CustomerErased(OutboundModel):
    """A customer erased (``segmenter erase``): downstream consumers delete what they hold of it too."""

    type: Literal["erasure"] = "erasure"
    change_id: str = Field(description="Deterministic: the same erasure always yields the same id.")
    customer_id: str
    cause: Literal["erasure"] = "erasure"
    segments: dict[str, str] = Field(default_factory=dict, description="What the customer was in, per dimension.")
    reason: str
    by: str
    erased_at: AwareDatetime = Field(description="Events dated at or before it stay ignored; later ones start a "
                                     "fresh customer.")
    stream_time: AwareDatetime


class Occasion(OutboundModel):
    """A customer's birthday or first-purchase anniversary reached (``lead_days`` ahead of it), for the actions that
    fire ``on`` it; once a year per customer, occasion and lead. Not a change of state: it moves no segment."""

    type: Literal["occasion"] = "occasion"
    change_id: str = Field(description="Deterministic: the customer, the occasion, its date, the lead and the "
                           "ruleset id (the same for every version).")
    customer_id: str
    occasion: Literal["birthday", "first_purchase_anniversary"]
    date: dt.date = Field(description="The birthday or anniversary itself, in the business timezone.")
    lead_days: int = Field(ge=0, description="How many days ahead of `date` it was reached.")
    ruleset_id: str
    ruleset_version: int
    stream_time: AwareDatetime
    profile: dict[str, str | None] = Field(
        default_factory=dict, description="The customer's profile attributes then (for action routing; never the "
        "birth date).")


AnyChange = Annotated[SegmentChange | TagChange | Occasion | CustomerErased, Field(discriminator="type")]
CHANGE_ADAPTER: TypeAdapter[SegmentChange | TagChange | Occasion | CustomerErased] = TypeAdapter(AnyChange)
"""Reads one record of the segment-changes topic (a segment change, a tag change, an occasion or an erasure)."""


class ActionOutput(OutboundModel):
    """What every output of an action carries: which transition of which customer, under which action and ruleset.
    ``idempotency_key`` is the same for every copy of one grant."""

    idempotency_key: str = Field(description="action:change_id")
    change_id: str
    customer_id: str
    action: str = Field(description="The ruleset's action id.")
    segment: str = Field(description="dimension.segment entered (or left).")
    ruleset_id: str
    ruleset_version: int
    stream_time: AwareDatetime = Field(description="When the transition held (or the dwell ended).")


class Coupon(ActionOutput):
    """A coupon granted because of a segment change."""

    type: Literal["coupon"] = "coupon"
    coupon_id: str = Field(description="Derived from change_id and action: every copy is the same grant.")
    template: str
    code: str
    value: Decimal | None = None
    percent: Decimal | None = None
    valid_until: AwareDatetime
    issued_at: AwareDatetime


class Alert(ActionOutput):
    """An account-manager alert raised because of a segment change."""

    type: Literal["alert"] = "alert"
    alert_id: str = Field(description="Derived from change_id and action: every copy is the same grant.")
    priority: Literal["low", "normal", "high", "urgent"]
    manager: str | None
    team: str | None
    message: str
    raised_at: AwareDatetime


class Published(ActionOutput):
    """An event a ruleset's ``publish`` action sends to ``<prefix>publish.<topic>`` for another tool (e-mail, SMS,
    ads), once per transition as coupons are. ``schema_version`` changes only with an incompatible change."""

    type: Literal["publish"] = "publish"
    schema_version: Literal[1] = 1
    publish_id: str = Field(description="Derived from change_id and action: every copy is the same event.")
    topic: str = Field(description="The action's topic name (after '<prefix>publish.').")
    payload: dict[str, str] = Field(description="The action's payload templates, filled for this customer.")
    published_at: AwareDatetime


class ActionSuppressed(OutboundModel):
    """An action a transition would have triggered, and why it was not (the audit topic)."""

    type: Literal["action_suppressed"] = "action_suppressed"
    idempotency_key: str
    change_id: str
    customer_id: str
    action: str
    segment: str
    reason: Literal["cooldown", "replay", "dwell", "recovery"] = Field(
        description="cooldown: acted on recently; replay: history older than the horizon, or actions "
        "switched off; dwell: left the segment before min_dwell; recovery: a change of cause recovery (the "
        "segment-change topic set back to a worker's saved state after it stopped), not a move of the customer's.")
    stream_time: AwareDatetime
    at: AwareDatetime


class DeadLetter(OutboundModel):
    """An input record that could not be processed, kept byte for byte with the reason."""

    type: Literal["dead_letter"] = "dead_letter"
    source_topic: str
    partition: int
    offset: int
    key_b64: str | None
    value_b64: str = Field(description="The original bytes, base64.")
    error_class: str
    error_message: str
    reason: Literal["bad_input", "processing_error", "wrong_partition"] = Field(
        "bad_input", description="bad_input: the record breaks the contract; processing_error: applying it raised "
        "(a defect of segmenter: report it with this record; the rest of the partition went on); wrong_partition: "
        "it was on another partition than murmur2 of its customer id gives (with SEGMENTER_WRONG_PARTITION="
        "dead-letter; the default reroutes it).")
    failed_at: AwareDatetime
