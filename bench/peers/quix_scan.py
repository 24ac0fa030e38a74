"""The peer's time-driven transitions: the job a Quix Streams user schedules once a day (cron), since Quix has no
per-key timers. It scans the read model's keys in Redis (``SCAN MATCH <prefix>*``) and sends every customer found a
``{"customer_id", "tick": as_of}`` record on the input topic, keyed by the customer (so it lands on the partition
that holds the customer's state); ``quix_app.py --job same`` re-evaluates each and publishes what moved.

    python quix_scan.py --broker HOST:PORT --input TOPIC --redis-url URL --redis-prefix P --as-of ISO

Prints the number of customers sent. Runs in the peer's environment, like the app.
"""

from __future__ import annotations

import argparse
import json

import redis
from quixstreams import Application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("broker", "input", "redis-url", "redis-prefix", "as-of"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    app = Application(broker_address=args.broker)
    sent = 0
    with app.get_producer() as producer:
        for key in client.scan_iter(match=f"{args.redis_prefix}*", count=10_000):
            customer = key.decode()[len(args.redis_prefix):]
            producer.produce(args.input, key=customer.encode(),
                             value=json.dumps({"customer_id": customer, "tick": args.as_of}).encode())
            sent += 1
    print(sent, flush=True)


if __name__ == "__main__":
    main()
