"""Consumer-group lag: how far each group is behind the end of each Flywheel topic.

Ingest lag is the lag of the groups that read ``feedback.events``; the same
measurement covers the trainer on ``training.batches`` and the alerter on ``alerts``.
Only this deployment's topics count (``topic_prefix`` + a name from
:data:`flywheel.topics.ALL_TOPICS`), so test namespaces on the same cluster never leak
into production numbers. Groups are labelled without this deployment's prefix too
(:meth:`~flywheel.kafka.KafkaConfig.unscoped`: the trainer's group reads
``flywheel-trainer`` in every deployment); a group named outside the prefix, say an
external consumer of a Flywheel topic, keeps its name.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from flywheel.kafka import KafkaConfig, make_consumer
from flywheel.topics import ALL_TOPICS

__all__ = ["LagProbe"]

log = logging.getLogger(__name__)


class LagProbe:
    def __init__(self, config: KafkaConfig, *, max_groups: int = 200) -> None:
        self._config = config
        self._max_groups = max_groups
        self._topics = {config.topic(spec): spec.name for spec in ALL_TOPICS}
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self._config.bootstrap_servers,
            client_id=f"{self._config.client_id}-lag",
        )
        await self._admin.start()
        # A group-less consumer only to ask for end offsets (read_committed: the LSO,
        # which is what a read_committed group can actually reach).
        self._consumer = make_consumer(self._config, group_id=None)
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def measure(self) -> dict[tuple[str, str], int]:
        """``{(group, topic), both without prefix: records behind}`` summed over partitions."""
        if self._admin is None or self._consumer is None:
            raise RuntimeError("start() first")
        groups = sorted(g[0] for g in await self._admin.list_consumer_groups())
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups[: self._max_groups]:
            offsets = await self._admin.list_consumer_group_offsets(group)
            mine = {
                tp: meta.offset
                for tp, meta in offsets.items()
                if tp.topic in self._topics and meta.offset >= 0
            }
            if mine:
                committed[group] = mine
        if len(groups) > self._max_groups:
            log.warning("lag measured for the first %d of %d groups", self._max_groups, len(groups))
        partitions = {tp for offsets in committed.values() for tp in offsets}
        if not partitions:
            return {}
        ends = await self._consumer.end_offsets(sorted(partitions))
        lag: dict[tuple[str, str], int] = defaultdict(int)
        for group, offsets in committed.items():
            for tp, offset in offsets.items():
                label = self._config.unscoped(group)
                lag[(label, self._topics[tp.topic])] += max(0, ends[tp] - offset)
        return dict(lag)
