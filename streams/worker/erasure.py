"""The erasure half of ``Engine`` (``segmenter erase``): a customer forgotten in its partition, and remembered only
as a keyed hash of its id with the erasure's time, so that older events replayed do not bring it back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from segmenter.privacy import erased_key
from streams.kafka import faust_compat
from streams.text import clip
from streams.worker.documents import erasure_json
from streams.worker.partition import Partition
from streams.worker.records import Records

log = logging.getLogger("segmenter.worker")


class Erasing(Records):
    """The engine's attributes are declared in ``Records``."""

    def _known(self, part: Partition, customer: str) -> bool:
        if customer in part.records:
            return True
        return customer not in part.deleted and faust_compat.stored_get(self.customers, part.number,
                                                                        customer.encode()) is not None

    def _erase(self, part: Partition, customer: str, at: datetime, reason: str, by: str) -> None:
        """Forget the customer: its record (a tombstone in the changelog at the next flush), its due entry, its place
        in Redis and the population index; remember a hash of its id with the erasure's time, so older events do not
        bring it back; publish the erasure for downstream consumers."""
        when = int(at.timestamp())
        key = erased_key(customer, self.erase_secret)
        known = self._known(part, customer)
        segments = dict(self._get(part, customer).segments) if known else {}
        part.erased[key] = max(when, part.erased.get(key, when))
        part.meta_dirty = True
        part.records.pop(customer, None)
        self.flusher.forget(customer)  # the encoder's memo of its older days
        part.dues.pop(customer, None)  # its heap entry, if any, is skipped when popped
        part.history.pop(customer, None)
        if part.replaying is not None:  # the erasure is the topic's last word on the customer
            part.replaying.published.pop(customer, None)
        part.dirty.discard(customer)
        part.deleted.add(customer)
        if part.index is not None:
            part.index.update(customer, None)
        stream_time = (part.stream_time or datetime.now(UTC)).isoformat()
        part.changes.append((customer.encode(), erasure_json(customer, segments, reason=reason, by=by, at=at,
                                                              stream_time=stream_time)))
        self.stats["erased"] += 1
        log.info("partition %d: a customer was erased (%s, by %s); %s", part.number, clip(reason), clip(by),
                    "its record goes at the next flush" if known else "it held no record")
