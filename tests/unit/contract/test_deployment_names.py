"""Every consumer group and transactional id a service uses follows the topic prefix.

Kafka keeps group ids and transactional ids cluster-wide, so two deployments on one
cluster (staging beside prod, a test namespace beside the local stack) that shared one
would rebalance each other's consumers or fence each other's producers. With no prefix
the names are exactly the ones deployments had before they were scoped, so an upgrade
keeps their committed offsets.
"""

from __future__ import annotations

import pytest

from alerter.config import Settings as AlerterSettings
from alerter.service import AlerterService
from predictor.config import Settings as PredictorSettings
from predictor.service import PredictorService
from stream_ingest.config import Settings as IngestSettings
from stream_ingest.service import StreamIngest
from stream_ingest.writer import KafkaFlushWriter
from tests.unit.alerter.conftest import simple_config
from trainer.config import Settings as TrainerSettings
from trainer.service import TrainerService

# (prefix, what the names must start with); "" is every default deployment.
PREFIXES = [("", ""), ("staging.", "staging.")]


def ingest_names(prefix: str) -> tuple[str, str]:
    writers: list[KafkaFlushWriter] = []

    def keep(writer: KafkaFlushWriter) -> KafkaFlushWriter:
        writers.append(writer)
        return writer

    service = StreamIngest(IngestSettings(topic_prefix=prefix), serve_http=False, wrap_writer=keep)
    return service.group_id, writers[0].transactional_id(3)


@pytest.mark.parametrize(("prefix", "start"), PREFIXES)
def test_stream_ingest(prefix: str, start: str) -> None:
    assert ingest_names(prefix) == (
        f"{start}flywheel.stream-ingest",
        f"{start}flywheel.stream-ingest.3",
    )


@pytest.mark.parametrize(("prefix", "start"), PREFIXES)
def test_trainer(prefix: str, start: str) -> None:
    service = TrainerService(TrainerSettings(topic_prefix=prefix))
    assert service.group_id == f"{start}flywheel-trainer"
    # The topic inside the id is the unprefixed name: the prefix appears once.
    assert service.transactional_id(2) == f"{start}flywheel-trainer.training.batches.2"


@pytest.mark.parametrize(("prefix", "start"), PREFIXES)
def test_alerter(prefix: str, start: str) -> None:
    service = AlerterService(AlerterSettings(topic_prefix=prefix), simple_config())
    assert service.group_id == f"{start}flywheel-alerter"
    assert service.journal_transactional_id == f"{start}flywheel-alerter"


@pytest.mark.parametrize(("prefix", "start"), PREFIXES)
def test_predictor_batch_group(prefix: str, start: str) -> None:
    service = PredictorService(PredictorSettings(topic_prefix=prefix))
    assert service.batch_group_id == f"{start}flywheel-predictor-batch"


def test_names_set_by_the_operator_are_scoped_too() -> None:
    prefix = "staging."
    trainer = TrainerService(
        TrainerSettings(topic_prefix=prefix, trainer_group_id="g", trainer_transactional_id="tx")
    )
    predictor = PredictorService(
        PredictorSettings(topic_prefix=prefix, predictor_batch_group_id="batch")
    )
    alerter = AlerterService(
        AlerterSettings(topic_prefix=prefix, alerter_consumer_group="alerts"), simple_config()
    )
    assert (trainer.group_id, trainer.transactional_id(0)) == (
        "staging.g",
        "staging.tx.training.batches.0",
    )
    assert predictor.batch_group_id == "staging.batch"
    assert alerter.group_id == "staging.alerts"


def test_two_deployments_share_no_name() -> None:
    def names(prefix: str) -> set[str]:
        trainer = TrainerService(TrainerSettings(topic_prefix=prefix))
        alerter = AlerterService(AlerterSettings(topic_prefix=prefix), simple_config())
        predictor = PredictorService(PredictorSettings(topic_prefix=prefix))
        return {
            *ingest_names(prefix),
            trainer.group_id,
            *(trainer.transactional_id(p) for p in range(6)),
            alerter.group_id,
            alerter.journal_transactional_id,
            predictor.batch_group_id,
        }

    assert not names("staging.") & names("prod.")
    assert not names("staging.") & names("")


def test_a_group_id_that_does_not_fit_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="predictor_batch_group_id"):
        PredictorSettings(predictor_batch_group_id="no spaces")
