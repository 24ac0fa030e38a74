"""How an erased customer is remembered: by a keyed hash of its id, never the id."""

from __future__ import annotations

import hashlib


def erased_key(customer: str, secret: bytes) -> str:
    """A hash of ``customer`` keyed with the operator's secret (SEGMENTER_ERASURE_KEY, as 32 bytes), so that no one
    holding a backup or the erasure log can find an erased id by hashing candidate ids."""
    return hashlib.blake2b(customer.encode(), digest_size=16, key=secret, person=b"segmenter-erase").hexdigest()
