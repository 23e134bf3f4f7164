"""Checks that the session's Kafka broker serves clients the way the agents need."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord

pytestmark = pytest.mark.integration

TEST_TIMEOUT_S = 60


async def consume(
    consumer: AIOKafkaConsumer, count: int
) -> list[ConsumerRecord[bytes, bytes]]:
    records: list[ConsumerRecord[bytes, bytes]] = []
    while len(records) < count:
        batches = await consumer.getmany(timeout_ms=1000)
        for batch in batches.values():
            records.extend(batch)
    return records


async def test_broker_produce_consume_round_trip(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # The topic does not exist yet, so this also checks auto-creation.
    topic = f"{topic_prefix}invoices"
    values = [f'{{"invoice": {n}, "amount": 125.5}}'.encode() for n in range(5)]

    async with asyncio.timeout(TEST_TIMEOUT_S):
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for value in values:
                # One key puts all records in one partition, which keeps their order.
                await producer.send_and_wait(topic, value, key=b"customer-42")
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=f"{topic_prefix}scorer",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            records = await consume(consumer, len(values))
            # A commit needs __consumer_offsets, which a single node can create
            # only because offsets.topic.replication.factor is 1.
            await consumer.commit()
        finally:
            await consumer.stop()

    assert [record.value for record in records] == values
    assert {record.key for record in records} == {b"customer-42"}
    assert len({record.partition for record in records}) == 1


async def test_broker_creates_compacted_topic(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}customer-state"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)

    async with asyncio.timeout(TEST_TIMEOUT_S):
        await admin.start()
        try:
            created = await admin.create_topics(
                [
                    NewTopic(
                        topic,
                        num_partitions=4,
                        replication_factor=1,
                        topic_configs={"cleanup.policy": "compact"},
                    )
                ]
            )
            # A new topic's partitions reach the metadata a little after
            # CreateTopics returns, later still on a loaded machine.
            described = await admin.describe_topics([topic])
            while not described[0]["partitions"]:
                await asyncio.sleep(0.2)
                described = await admin.describe_topics([topic])
            config_responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)]
            )
            await admin.delete_topics([topic])
        finally:
            await admin.close()

    assert [(name, code) for name, code, _ in created.topic_errors] == [(topic, 0)]
    assert [entry["topic"] for entry in described] == [topic]
    partitions = described[0]["partitions"]
    assert sorted(partition["partition"] for partition in partitions) == [0, 1, 2, 3]
    assert all(partition["leader"] >= 0 for partition in partitions)

    resources = config_responses[0].to_object()["resources"]
    assert [resource["error_code"] for resource in resources] == [0]
    configs = {
        entry["config_names"]: entry["config_value"]
        for entry in resources[0]["config_entries"]
    }
    assert configs["cleanup.policy"] == "compact"
