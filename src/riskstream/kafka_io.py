"""Small aiokafka helpers: topic creation, produce, and batched sends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from riskstream.events import TOPIC_FOR_TYPE, route
from riskstream.settings import Settings

OUTPUT_TOPICS = (
    "risk.alerts",
    "risk.scores",
    "riskstream.deadletter",
    "riskstream.ticks",
)
INPUT_TOPICS = tuple(sorted(set(TOPIC_FOR_TYPE.values())))
COMPACTED = {"risk.scores"}
CHANGELOG_TABLES = ("customers", "models")


def bootstrap_of(broker: str) -> str:
    """Turn a Faust broker URL (``kafka://host:port;...``) into a bootstrap list.

    >>> bootstrap_of("kafka://127.0.0.1:9092")
    '127.0.0.1:9092'
    """
    hosts = [part.split("://", 1)[-1] for part in broker.split(";")]
    return ",".join(host.rstrip("/") for host in hosts)


async def cluster_id(settings: Settings) -> str | None:
    """Return the id of the Kafka cluster behind the broker URL, if it reports one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(settings.broker))
    try:
        await admin.start()
        described = await admin.describe_cluster()
    finally:
        await admin.close()
    value = described.get("cluster_id")
    return value if isinstance(value, str) else None


async def ensure_topics(settings: Settings, *, tables: bool = False) -> list[str]:
    """Create missing input and output topics; return the names created.

    With ``tables``, also the compacted changelog topics of the worker's
    tables: Faust would create them itself, but a worker that starts before
    their metadata reaches it stops with ``PartitionsMismatch``.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(settings.broker))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = []
        for name in (*INPUT_TOPICS, *OUTPUT_TOPICS):
            full = settings.topic(name)
            if full in existing:
                continue
            configs = {"cleanup.policy": "compact"} if name in COMPACTED else {}
            wanted.append(
                NewTopic(
                    full,
                    num_partitions=settings.partitions,
                    replication_factor=settings.replication_factor,
                    topic_configs=configs,
                )
            )
        if tables:
            for table in CHANGELOG_TABLES:
                name = f"{settings.app_id}-{table}-changelog"
                if name not in existing:
                    wanted.append(
                        NewTopic(
                            name,
                            num_partitions=settings.partitions,
                            replication_factor=settings.replication_factor,
                            topic_configs={"cleanup.policy": "compact"},
                        )
                    )
        if wanted:
            await admin.create_topics(wanted)
        return [topic.name for topic in wanted]
    finally:
        await admin.close()


async def produce_lines(settings: Settings, lines: Iterable[bytes]) -> Counter[str]:
    """Publish each line to its topic, keyed by customer; return counts by topic."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_of(settings.broker),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    counts: Counter[str] = Counter()
    try:
        # Inside the try, so a producer that cannot reach the broker is
        # closed too.
        await producer.start()
        for raw in lines:
            topic, key = route(raw)
            # An unkeyed line goes to partition 0 rather than a random one, so
            # replay can tell where it went.
            partition = 0 if key is None else None
            await producer.send(
                settings.topic(topic), value=raw, key=key, partition=partition
            )
            counts[settings.topic(topic)] += 1
        await producer.flush()
    finally:
        await producer.stop()
    return counts


Rows = dict[int, list[tuple[bytes, bytes]]]
"""Keyed values to send, by partition: ``partition -> [(key, value), ...]``."""


async def send_batches(producer: AIOKafkaProducer, topic: str, rows: Rows) -> None:
    """Send keyed values as one or more record batches per partition.

    aiokafka's per-message ``send`` waits for metadata and creates futures for
    every message, so records are appended to batches directly. A record
    larger than a whole batch goes through ``send`` on its own.
    Delivery is confirmed by the producer's next ``flush``.
    """
    for partition, records in sorted(rows.items()):
        builder = producer.create_batch()
        for key, value in records:
            if builder.append(key=key, value=value, timestamp=None) is not None:
                continue
            if builder.record_count():
                await producer.send_batch(builder, topic, partition=partition)
                builder = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is not None:
                    continue
            await producer.send(topic, value, key=key, partition=partition)
        if builder.record_count():
            await producer.send_batch(builder, topic, partition=partition)
