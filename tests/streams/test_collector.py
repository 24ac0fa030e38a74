"""The worker's garbage collection schedule (streams/worker/collector.py), in a child process of its own:
it turns CPython's collector off and freezes objects, which the test process must not inherit."""

import platform
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import gc, time, weakref
    from streams.worker import collector

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    collector.take_over()
    young = collector.Collector(full_every_s=0, young_every_s=3600)  # a young collection is not due
    ref = cycle()
    frozen = gc.get_freeze_count()
    young.freeze()
    print("not due: cycle alive", ref() is not None, "frozen grew", gc.get_freeze_count() > frozen)

    young.young_every_s = 0  # due at every call
    ref = cycle()
    young.freeze()
    print("due: cycle alive", ref() is not None, "freed", young.young_freed)

    full = collector.Collector(full_every_s=0.001, young_every_s=3600)
    ref = cycle()
    young.young_every_s = 3600
    young.freeze()  # frozen uncollected
    time.sleep(0.01)
    full.freeze()  # a full collection unfreezes and collects everything
    print("full: cycle alive", ref() is not None)
    print("trim", collector.trim())
""")


def test_young_collections_run_on_their_schedule_and_a_full_one_reclaims_frozen_cycles():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60)
    lines = done.stdout.splitlines()
    assert lines[0] == "not due: cycle alive True frozen grew True"  # frozen with the rest, kept
    assert lines[1].startswith("due: cycle alive False freed ")
    assert int(lines[1].rsplit(" ", 1)[1]) >= 2  # the two nodes, at least
    assert lines[2] == "full: cycle alive False"
    assert lines[3] == ("trim True" if platform.libc_ver()[0] == "glibc" else "trim False")
