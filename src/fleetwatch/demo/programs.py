"""Programs that make the demo fleet look alive: ``python -m fleetwatch.demo.programs KIND``.

* ``service``  — a steady service: a heartbeat line every 30 s.
* ``flapper``  — runs 4-6 s, then exits with status 3 (supervisord restarts it forever).
* ``talker``   — a stdout line every 0.5 s and a stderr line every 2.5 s, with non-ASCII text.
* ``worker``   — a quiet worker of a numprocs group.
"""

from __future__ import annotations

import random
import sys
import time


def service(name: str) -> None:
    print(f"{name}: service up", flush=True)
    while True:
        time.sleep(30)
        print(f"{time.strftime('%H:%M:%S')} {name}: heartbeat", flush=True)


def flapper(name: str) -> None:
    secs = random.uniform(4, 6)
    print(f"{name}: starting, will exit in {secs:.1f}s", flush=True)
    time.sleep(secs)
    print(f"{name}: exiting with status 3", file=sys.stderr, flush=True)
    sys.exit(3)


def talker(name: str) -> None:
    i = 0
    while True:
        i += 1
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} {name} line {i}: all good, température=21°C, ✓ 日本語", flush=True)
        if i % 5 == 0:
            print(f"{stamp} {name} warning {i}: something odd ⚠", file=sys.stderr, flush=True)
        time.sleep(0.5)


def worker(name: str) -> None:
    while True:
        time.sleep(3600)


KINDS = {"service": service, "flapper": flapper, "talker": talker, "worker": worker}

if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "service"
    KINDS[kind](sys.argv[2] if len(sys.argv) > 2 else kind)
