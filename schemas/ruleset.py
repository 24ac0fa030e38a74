"""The ruleset document (compacted topic, key = ruleset id), as written in YAML."""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from schemas.base import OutboundModel
from schemas.events import NO_CONTROL


def _normal(name: str) -> str:
    """One spelling per name: a name that Unicode's compatibility normalisation would change (full-width Ａ for A,
    a ligature) is refused, so two names that look alike are never two dimensions."""
    normal = unicodedata.normalize("NFKC", name)
    if normal != name:
        raise ValueError(f"write {name!r} as {normal!r} (its normal Unicode form)")
    return name


Name = Annotated[str, Field(pattern=r"^[^\W\d]\w*$", max_length=64,
                            description="Letters (of any script, 高价值客户 included), digits and _; not starting "
                                        "with a digit."), AfterValidator(_normal)]
SegmentRef = Annotated[str, Field(pattern=r"^[^\W\d]\w*\.[^\W\d]\w*$", max_length=129,
                                  description="dimension.segment"), AfterValidator(_normal)]
Label = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_CONTROL,
                             description="How people read the name: reports, the customer's story, the dashboard.")]
Strategy = Annotated[str, Field(min_length=1, max_length=2000,
                                pattern=r"^[^\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]+$",
                                description="What to do with the segment's customers (差异化营销策略): who serves "
                                            "them, how often, what offer. Shown with the segment; nothing runs it.")]


class SegmentRule(OutboundModel):
    """One segment of a dimension: its name and the condition that puts a customer in it."""

    name: Name
    when: Annotated[str, Field(min_length=1)]
    label: Label | None = None
    strategy: Strategy | None = None


TagTemplate = Annotated[str, Field(
    pattern=r"^[\w.:/{}-]+$", min_length=1, max_length=128,
    description="A tag's name, e.g. risk:no_repurchase_3m or 行业:制造业; {profile.industry} (or .type, .region, "
    ".size) is replaced by the customer's attribute, and the tag is absent while the attribute is unknown.")]


class TagRule(OutboundModel):
    """A tag (标签) the rules give: present while ``when`` holds (always, without one); many per customer."""

    name: TagTemplate
    when: Annotated[str, Field(min_length=1)] | None = None


class Dimension(OutboundModel):
    """An ordered list of segments (first match wins) and the default when none matches."""

    segments: Annotated[list[SegmentRule], Field(min_length=1)]
    default: Name
    label: Label | None = None
    default_label: Label | None = None
    default_strategy: Strategy | None = None



Duration = Annotated[str, Field(pattern=r"^\d+(d|h|s)$", description="Like 30d, 12h or 90s.")]
Manager = Annotated[str, Field(min_length=1, max_length=128)]
Attribute = Literal["type", "region", "industry", "size"]


class CouponAction(OutboundModel):
    """A coupon to grant: a template, a fixed value or a percentage, and how long it stays valid."""

    template: Annotated[str, Field(pattern=r"^[\w-]+$", max_length=64)]
    value: Annotated[Decimal, Field(gt=0, le=10**12, allow_inf_nan=False)] | None = None
    percent: Annotated[Decimal, Field(gt=0, le=100, allow_inf_nan=False)] | None = None
    valid_for: Duration = "30d"

    @model_validator(mode="after")
    def _one_amount(self) -> CouponAction:
        if (self.value is None) == (self.percent is None):
            raise ValueError("a coupon has exactly one of 'value' or 'percent'")
        return self


class AlertAction(OutboundModel):
    """An account-manager alert: its priority, the roster that routes it, and its message."""

    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    roster: Name | None = None
    message: str = "{customer_id} entered {dimension}.{segment}"


class PublishAction(OutboundModel):
    """A documented, versioned event (``schemas/json/published.schema.json``) to the topic ``<prefix>publish.<topic>``,
    for a tool that acts on it (e-mail, SMS, ads); each payload value is a template of ``{customer_id}``,
    ``{dimension}``, ``{segment}``, ``{label}`` and ``{strategy}``."""

    topic: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Kafka's topic characters only.")]
    payload: Annotated[dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")],
                            Annotated[str, Field(max_length=2000)]], Field(max_length=32)] = Field(
        default_factory=dict)


class ActionRule(OutboundModel):
    """On entering (or leaving) ``dimension.segment``: grant a coupon, raise an alert or publish an event."""

    id: Name
    enter: SegmentRef | None = None
    leave: SegmentRef | None = None
    on: Literal["birthday", "first_purchase_anniversary"] | None = Field(
        None, description="Instead of a transition: the customer's birthday (its profile's birth_date) or the "
        "anniversary of its first purchase, once a year.")
    lead: Duration = Field("0d", description="With 'on': fire this many days ahead of the day (whole days).")
    coupon: CouponAction | None = None
    alert: AlertAction | None = None
    publish: PublishAction | None = None
    cooldown: Duration = Field("0d", description="No second action for the same customer within it.")
    min_dwell: Duration = Field("0d", description="Act only once the customer stayed this long; leaving cancels.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ActionRule:
        if sum(trigger is not None for trigger in (self.enter, self.leave, self.on)) != 1:
            raise ValueError("an action has exactly one of 'enter' or 'leave' (dimension.segment) or 'on' "
                             "(birthday, first_purchase_anniversary)")
        if self.on is None and int(self.lead[:-1]):
            raise ValueError("'lead' goes with 'on' (an occasion), not with a transition")
        if self.on is not None and int(self.min_dwell[:-1]):
            raise ValueError("'min_dwell' goes with a transition, not with 'on'")
        if sum(kind is not None for kind in (self.coupon, self.alert, self.publish)) != 1:
            raise ValueError("an action has exactly one of 'coupon', 'alert' or 'publish'")
        return self


class Roster(OutboundModel):
    """Account managers by team; a profile attribute picks the team, the policy picks the manager."""

    by: Attribute | None = Field(None, description="Profile attribute whose value names the team.")
    policy: Literal["least_loaded", "round_robin"] = "least_loaded"
    teams: dict[str, Annotated[list[Manager], Field(min_length=1)]] = Field(default_factory=dict)
    default: Annotated[list[Manager], Field(min_length=1)] = Field(
        description="The team of customers whose attribute names no team.")


class RuleSetDocument(OutboundModel):
    """A versioned set of classification dimensions."""

    id: Annotated[str, Field(pattern=r"^[\w.-]+$", max_length=128), AfterValidator(_normal)]
    version: Annotated[int, Field(ge=1, le=2**31 - 1)]
    description: str = ""
    dimensions: Annotated[dict[Name, Dimension], Field(min_length=1)]
    tags: list[TagRule] = Field(default_factory=list, description="Tags by condition or copied from the profile.")
    actions: list[ActionRule] = Field(default_factory=list, description="What to do on transitions.")
    rosters: dict[Name, Roster] = Field(default_factory=dict, description="Account-manager teams for alerts.")


class RuleSetApplied(OutboundModel):
    """One version of a ruleset as it was applied (the rules-history topic, key ``id@version``): never rewritten;
    a rollback applies an old version's text again as a new version."""

    id: Annotated[str, Field(pattern=r"^[\w.-]+$", max_length=128), AfterValidator(_normal)]
    version: Annotated[int, Field(ge=1)]
    yaml: str = Field(description="The ruleset document as applied.")
    source: str = Field(description="Where it was read from (a file name).")
    author: Annotated[str, Field(max_length=256)]
    message: Annotated[str, Field(max_length=4096)] = ""
    applied_at: AwareDatetime
