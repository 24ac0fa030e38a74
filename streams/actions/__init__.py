"""The action worker: segment changes in, coupons and account-manager alerts out, exactly once (``actor``), with
its ledger in Redis (``ledger``) and its faust app (``app``).
Imports the foundation, ``streams.kafka`` and ``streams.readmodel``; never ``streams.worker``, ``stack`` or
``cli``."""
