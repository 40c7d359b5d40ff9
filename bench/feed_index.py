"""Time loading and matching a synthetic one-million-entry IPsum-style feed.

Run: ``.venv/bin/python bench/feed_index.py [ENTRIES]``. The script prints
ratios against baselines measured in the same process, because absolute
times depend on the machine:

- parse+load per entry against ``ipaddress.ip_address`` per entry (the
  cost of merely parsing each line's address with the standard library);
- lookup per address against a plain dict lookup of a precomputed int key.

The feed mixes single addresses with networks of five prefix lengths, so
each lookup probes the exact table and every prefix table that is in use.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import sys
import time
from collections.abc import Callable

from iocscope.sources.feeds.index import FeedIndex, IpIndex
from iocscope.sources.feeds.parsers import ParseReport, iter_feed

DEFAULT_ENTRIES = 1_000_000
LOOKUPS = 1_000_000
PREFIXES = (16, 20, 22, 24, 28)


def _address(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def build_feed(entries: int, seed: int = 7) -> tuple[str, list[str]]:
    """Return IPsum text with ``entries`` lines (2% networks) and the listed addresses."""
    rng = random.Random(seed)
    lines = ["# synthetic IPsum feed", "#"]
    addresses = []
    for _ in range(entries):
        value = rng.randrange(1 << 24, 223 << 24)
        count = rng.randint(1, 10)
        if rng.random() < 0.02:
            prefix = rng.choice(PREFIXES)
            network = value >> (32 - prefix) << (32 - prefix)
            lines.append(f"{_address(network)}/{prefix}\t{count}")
        else:
            text = _address(value)
            addresses.append(text)
            lines.append(f"{text}\t{count}")
    return "\n".join(lines), addresses


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def load(text: str) -> FeedIndex:
    index = FeedIndex()
    report = ParseReport()
    for entry in iter_feed("ipsum", text, report):
        index.add(entry.value, entry.type, entry.meta, entry.ip_key)
    return index


def main() -> None:
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_ENTRIES
    text, listed = build_feed(entries)
    lines = [line.split("\t", 1)[0] for line in text.splitlines()[2:]]

    baseline_parse = timed(lambda: [ipaddress.ip_address(line.split("/")[0]) for line in lines])
    holder: list[FeedIndex] = []
    load_time = timed(lambda: holder.append(load(text)))
    ips: IpIndex = holder[0].ips

    rng = random.Random(11)
    probes = [
        rng.choice(listed) if rng.random() < 0.5 else _address(rng.randrange(1 << 24, 223 << 24))
        for _ in range(LOOKUPS)
    ]
    keys = {int(ipaddress.IPv4Address(address)): None for address in listed}
    probe_ints = [int(ipaddress.IPv4Address(address)) for address in probes]
    baseline_lookup = timed(lambda: [keys.get(value) for value in probe_ints])
    hits: list[int] = []
    lookup_time = timed(lambda: hits.append(sum(ips.match(probe) is not None for probe in probes)))

    print(f"entries loaded:            {len(ips):,} (from {entries:,} lines)")
    print(f"parse+load:                {load_time:.2f} s, {load_time / entries * 1e6:.2f} us/entry")
    print(f"  ratio to ipaddress parse: {load_time / baseline_parse:.2f}x")
    print(f"lookups:                   {LOOKUPS:,}, {hits[0]:,} hits")
    print(f"  per lookup:              {lookup_time / LOOKUPS * 1e6:.2f} us")
    print(f"  ratio to dict.get(int):  {lookup_time / baseline_lookup:.1f}x")


if __name__ == "__main__":
    main()
