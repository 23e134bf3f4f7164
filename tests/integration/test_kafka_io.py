"""riskstream.kafka_io on the real broker."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from riskstream.kafka_io import send_batches

from .kafka_tools import read_topic


async def send_rows(bootstrap: str, topic: str, rows) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await send_batches(producer, topic, rows)
        await producer.flush()
    finally:
        await producer.stop()


def test_send_batches_delivers_every_record(kafka_bootstrap, topic_prefix):
    topic = f"{topic_prefix}batched"
    small = [(f"k{n}".encode(), f"v{n}".encode() * 40) for n in range(600)]
    large = (b"big", b"x" * 40_000)
    rows = {0: small[:300] + [large] + small[300:400], 1: small[400:]}

    asyncio.run(send_rows(kafka_bootstrap, topic, rows))

    received = read_topic(kafka_bootstrap, topic)
    assert len(received) == 601
    assert sorted(received) == sorted([*small, large])
