"""``freeze_start_up``: what is alive is exempt from later collections, what was
garbage is collected first. Run in a fresh interpreter: freezing acts on the process."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import gc, weakref
from kiltmq.broker.heap import freeze_start_up

class Node:
    pass

kept = Node()
garbage = Node()
garbage.cycle = garbage
gone = weakref.ref(garbage)
del garbage
count = freeze_start_up()
assert gone() is None, "garbage from before was not collected"
assert count > 1000, count
assert not any(o is kept for o in gc.get_objects()), "a start-up object is still walked"
later = Node()
assert any(o is later for o in gc.get_objects()), "a later object is not walked"
print("ok")
"""


def test_freeze_start_up_exempts_what_lives_and_collects_what_does_not() -> None:
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
