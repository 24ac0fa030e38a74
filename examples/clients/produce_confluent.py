"""Publish purchases to segmenter with confluent-kafka (librdkafka), whose default partitioner is CRC32: set
``partitioner`` to ``murmur2_random`` so a customer's records reach the partition Java and aiokafka clients use.

    python produce_confluent.py BOOTSTRAP [TOPIC_PREFIX]
"""

import json
import sys
from datetime import UTC, datetime

from confluent_kafka import Producer


def main(bootstrap: str, prefix: str = "segmenter.") -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "acks": "all",
                         "enable.idempotence": False})  # idempotence needs InitProducerId: see docs/integrating.md
    failed: list[str] = []

    def delivered(error: object, message: object) -> None:
        if error is not None:
            failed.append(str(error))

    for n, (customer, amount) in enumerate([("C-2001", "88.00"), ("C-2002", "9.90")]):
        event = {"event_id": f"shop-3-{n}", "customer_id": customer, "order_id": f"s-{n}", "amount": amount,
                 "occurred_at": datetime.now(UTC).isoformat()}
        producer.produce(f"{prefix}transactions", key=customer, value=json.dumps(event), on_delivery=delivered)
    left = producer.flush(30)
    if left or failed:
        raise SystemExit(f"not delivered: {left} left, {failed}")
    print("sent 2 purchases")


if __name__ == "__main__":
    main(*sys.argv[1:])
