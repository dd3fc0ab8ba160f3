#!/usr/bin/env python3
"""piwheels status messages: decode rate against cbor2 alone, and decode + apply to the model.

The stream is the 102 status frames of ``tests/vectors/piwheels-capture.jsonl`` (a real
piw-master with two build slaves), played ``--rounds`` times. Three figures, each the
best of ``--repeat`` runs, in messages per second:

* ``cbor2.loads`` alone (what any client must pay; tags left as CBORTag);
* ``decode_status`` (cbor2 + validation of every field + message objects), and its
  overhead as a ratio to cbor2 alone;
* decode + :meth:`Farm.apply` into a :class:`Fleet` (the whole sans-IO path: nodes,
  builds, committed every 100 messages as the hub does).

A master publishes a STATS every 10 s and each slave a few messages every 5-10 s, so
a farm of 100 slaves is ~50 messages/s; a replay of history is a few hundred at once.

    .venv/bin/python bench/piwheels.py [--rounds 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cbor2

from fleetwatch.model import Fleet
from fleetwatch.sources.piwheels.farm import Farm
from fleetwatch.sources.piwheels.protocol import decode_status

CAPTURE = Path(__file__).parents[1] / "tests" / "vectors" / "piwheels-capture.jsonl"


def frames() -> list[bytes]:
    out = []
    for line in CAPTURE.read_text().splitlines():
        d = json.loads(line)
        if d["dir"] == "status":
            out.append(bytes.fromhex(d["frame_hex"]))
    return out


def best(run: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="times the capture is played")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is shown")
    args = parser.parse_args()
    stream = frames() * args.rounds
    n = len(stream)

    def raw() -> None:
        loads = cbor2.loads
        for f in stream:
            loads(f)

    def decode() -> None:
        for f in stream:
            decode_status(f)

    def apply() -> None:
        fleet = Fleet("bench", finished_jobs=1000)
        farm = Farm("piw", fleet)
        for i, f in enumerate(stream):
            farm.apply(decode_status(f))
            if i % 100 == 99:
                fleet.commit()
        fleet.commit()

    t_raw = best(raw, args.repeat)
    t_dec = best(decode, args.repeat)
    t_app = best(apply, args.repeat)
    print(f"piwheels: {n:,} status messages ({len(stream) // args.rounds} frames x {args.rounds})")
    print(f"  cbor2.loads alone        {n / t_raw:>12,.0f} msg/s")
    print(
        f"  decode_status            {n / t_dec:>12,.0f} msg/s   "
        f"(x{t_dec / t_raw:.2f} the time of cbor2 alone)"
    )
    print(
        f"  decode + Farm.apply      {n / t_app:>12,.0f} msg/s   (into a Fleet, commit every 100)"
    )


if __name__ == "__main__":
    main()
