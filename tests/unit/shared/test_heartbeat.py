"""The heartbeat helper measures this process and never sends a non-finite gauge."""

from __future__ import annotations

import math
import os

import pytest

from flywheel import serde
from flywheel.events import Heartbeat
from flywheel.heartbeat import HeartbeatPublisher, ProcessUsage, default_instance
from flywheel.kafka import KafkaConfig


def test_build_reports_rss_and_service_gauges() -> None:
    publisher = HeartbeatPublisher(
        KafkaConfig(),
        "predictor",
        instance="host:1",
        gauges=lambda: {"queue_depth": 3, "model_trees": 120.0, "broken": math.nan},
    )
    beat = publisher.build()
    assert beat.service == "predictor"
    assert beat.instance == "host:1"
    assert beat.rss_bytes > 1_000_000  # a Python interpreter is never under 1 MB
    assert beat.gauges == {"queue_depth": 3.0, "model_trees": 120.0}
    assert serde.decode(Heartbeat, serde.encode(beat)) == beat


def test_failing_gauge_source_still_beats() -> None:
    def broken() -> dict[str, float]:
        raise RuntimeError("gauge source crashed")

    beat = HeartbeatPublisher(KafkaConfig(), "trainer", gauges=broken).build()
    assert beat.gauges == {}
    assert beat.rss_bytes > 0


def test_cpu_percent_measures_busy_time_between_samples() -> None:
    ticks = iter([0.0, 0.5])
    usage = ProcessUsage(clock=lambda: next(ticks))
    assert usage.sample()[1] == 0.0  # first sample has nothing to compare with
    start = os.times()
    while os.times().user + os.times().system - start.user - start.system < 0.02:
        pass  # burn CPU until the kernel's tick-granular counter moves
    _, percent = usage.sample()
    assert percent > 0.0


def test_instance_is_host_and_pid() -> None:
    assert default_instance().rsplit(":", 1)[1].isdigit()


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        HeartbeatPublisher(KafkaConfig(), "x", interval_s=0)
