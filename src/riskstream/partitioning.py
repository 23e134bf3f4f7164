"""Kafka's default partitioner (murmur2 of the key bytes), for co-location checks.

Faust writes each table row to the changelog partition of the event being
processed, so a customer's state is only restored to the right worker when all
of the customer's events sit in the partition the Java client's default
partitioner picks for the key. Replay uses the same function to reproduce the
worker's per-partition model updates.
"""

from __future__ import annotations

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Return the 32-bit murmur2 hash that Kafka clients use, seed 0x9747b28c.

    >>> murmur2(b"21"), murmur2(b"foobar")
    (-973932308, -790332482)
    """
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str, partitions: int) -> int:
    """Return the partition Kafka's default partitioner picks for ``key``.

    >>> partition_for("customer-1", 4) in range(4)
    True
    """
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
