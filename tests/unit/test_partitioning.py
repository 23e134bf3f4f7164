"""Unit tests for Kafka's default partitioner in riskstream.partitioning."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from riskstream.partitioning import murmur2, partition_for

KEYS = [
    "ACME-001",
    "BOLT-002",
    "CRANE-003",
    "SIM-000042",
    "",
    "a",
    "ab",
    "abc",
    "Kühne + Nagel",
    "x" * 257,
]


def test_murmur2_matches_aiokafka():
    rng = random.Random(20260105)
    samples = [rng.randbytes(rng.randrange(0, 64)) for _ in range(500)]

    mismatches = [
        data
        for data in samples
        if murmur2(data) % 2**32 != aiokafka_murmur2(data) % 2**32
    ]

    assert mismatches == []


def test_murmur2_is_signed_32_bit():
    rng = random.Random(7)
    samples = [rng.randbytes(rng.randrange(0, 64)) for _ in range(500)]

    hashes = [murmur2(data) for data in samples]

    assert all(-(2**31) <= value < 2**31 for value in hashes)
    assert any(value < 0 for value in hashes)


@pytest.mark.parametrize(
    "key", [pytest.param(key, id=key[:16] or "empty") for key in KEYS]
)
@pytest.mark.parametrize(
    "partitions",
    [
        pytest.param(1, id="1-partition"),
        pytest.param(3, id="3-partitions"),
        pytest.param(4, id="4-partitions"),
        pytest.param(12, id="12-partitions"),
    ],
)
def test_partition_for_matches_aiokafka(key, partitions):
    all_partitions = list(range(partitions))

    expected = DefaultPartitioner()(key.encode(), all_partitions, all_partitions)

    assert partition_for(key, partitions) == expected
