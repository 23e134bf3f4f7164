"""Worker and driver settings, from environment variables ``RISKSTREAM_*``.

Every field can also be passed on the command line; the command line wins.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of the Faust worker and the replay driver."""

    model_config = SettingsConfigDict(env_prefix="RISKSTREAM_", extra="ignore")

    broker: str = Field("kafka://localhost:9092", description="Kafka bootstrap URL")
    app_id: str = Field("riskstream", description="Faust app id and consumer group")
    topic_prefix: str = Field("", description="prefix of every topic name")
    partitions: int = Field(4, ge=1, description="partitions of every topic")
    replication_factor: int = Field(1, ge=1, description="replicas of new topics")
    store: str = Field("rocksdb://", description="table store: rocksdb:// or memory://")
    data_dir: str = Field("./riskstream-data", description="worker's local state")
    rules_file: str | None = Field(None, description="scoring rules YAML")
    playbook_file: str | None = Field(
        None, description="playbook YAML: owner and actions per signal kind"
    )
    clock: Literal["event", "wall"] = Field(
        "wall",
        description="what drives overdue checks between events: the wall clock "
        "(live) or only event time (backfills, replay comparisons)",
    )
    tick_interval_s: float = Field(5.0, gt=0, description="wall-clock tick period")
    batch_size: int = Field(
        2000,
        ge=1,
        description="maximum events per processing batch; each changed customer "
        "is scored and written once per batch",
    )
    batch_timeout_s: float = Field(0.2, gt=0, description="max wait to fill a batch")
    state_cache_size: int = Field(
        20_000,
        ge=0,
        description="decoded customer states kept in memory per partition "
        "between batches",
    )
    merge_hold_s: float = Field(
        1.0,
        gt=0,
        description="maximum wait for a topic that has sent nothing since the "
        "partition was assigned, before the event-time merge goes on without it",
    )
    web_host: str = Field("127.0.0.1", description="address of the worker's web server")
    web_port: int = Field(6066, ge=0, description="port of the worker's web server")
    session_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Kafka group session timeout; Faust's 60 s default made a "
        "restarted worker wait for its departed predecessor",
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"

    def topic(self, name: str) -> str:
        """Return the full name of topic ``name``."""
        return f"{self.topic_prefix}{name}"
