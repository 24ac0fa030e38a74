"""Follow segment changes (and erasures) in a consumer group of your own, as a marketing tool would.

    python consume_changes.py BOOTSTRAP [TOPIC_PREFIX] [SECONDS]

Each record's key is the customer id, its value a JSON document with ``"type"``: ``segment_change`` (dimension,
``from`` -> ``to``, cause, the metrics that decided it), ``tag_change``, ``occasion`` (a birthday or anniversary) or
``erasure`` (delete what you hold of the customer); skip the types you do not know. A change can come twice (a
worker restarted): ``change_id`` is the same both times, so keep the last per customer and dimension, or
de-duplicate by ``change_id``.
"""

import asyncio
import json
import sys

from aiokafka import AIOKafkaConsumer


async def main(bootstrap: str, prefix: str = "segmenter.", seconds: str = "10") -> None:
    consumer = AIOKafkaConsumer(f"{prefix}segment-changes", bootstrap_servers=bootstrap, group_id="crm-sync",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: dict[tuple[str, str], str] = {}
    try:
        batches = await consumer.getmany(timeout_ms=int(float(seconds) * 1000))
        for messages in batches.values():
            for message in messages:
                doc = json.loads(message.value)
                if doc["type"] == "segment_change":
                    seen[doc["customer_id"], doc["dimension"]] = doc["to"]
                elif doc["type"] == "erasure":
                    for key in [k for k in seen if k[0] == doc["customer_id"]]:
                        del seen[key]
        await consumer.commit()  # after your own writes: at-least-once
    finally:
        await consumer.stop()
    for (customer, dimension), segment in sorted(seen.items()):
        print(f"{customer} {dimension} {segment}")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
