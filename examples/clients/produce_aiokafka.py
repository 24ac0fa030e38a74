"""Publish purchases to segmenter with aiokafka (murmur2 is its default partitioner: nothing to set).

    python produce_aiokafka.py BOOTSTRAP [TOPIC_PREFIX]
"""

import asyncio
import json
import sys
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer


async def main(bootstrap: str, prefix: str = "segmenter.") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")  # murmur2, like the Java client
    await producer.start()
    try:
        for n, (customer, amount) in enumerate([("C-1001", "129.00"), ("C-1002", "15.50"), ("C-1001", "40.00")]):
            event = {"event_id": f"pos-7-{n}", "customer_id": customer, "order_id": f"o-{n}", "amount": amount,
                     "currency": "CNY", "occurred_at": datetime.now(UTC).isoformat()}
            # the key is the customer id: it picks the partition, where the worker that owns the customer reads it
            await producer.send_and_wait(f"{prefix}transactions", key=customer.encode(),
                                         value=json.dumps(event).encode())
    finally:
        await producer.stop()
    print("sent 3 purchases")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
