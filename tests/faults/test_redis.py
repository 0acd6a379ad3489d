"""Redis (channel layer, tickets, cache, presence) cut, then frozen, while clients on both server
processes send over sockets and REST."""

import pytest

from tests.faults import checks
from tests.faults.harness import INTEGRITY, assert_none, assert_recovered, outage_scenario


@pytest.fixture(scope="module")
def redis_cut(fault_db):
    return outage_scenario(
        "redis_cut", "Redis cut for 5 s", lambda s: s.redis.cut(), lambda s: s.redis.restore(), outage=5, after=6
    )


@pytest.mark.faults_quick
def test_redis_cut_loses_duplicates_and_reorders_nothing(redis_cut):
    assert_none(redis_cut.problems(*INTEGRITY), "integrity")


@pytest.mark.faults_quick
def test_redis_cut_every_send_is_answered_within_10s(redis_cut):
    assert_none(redis_cut.problems("unanswered"), "unanswered sends")


@pytest.mark.faults_quick
def test_redis_cut_sockets_close_with_a_code_and_api_errors_are_json(redis_cut):
    assert_none(redis_cut.problems("close_codes", "api_errors_are_json"), "closes and API errors")


@pytest.mark.faults_quick
def test_redis_cut_live_delivery_is_back_within_1s(redis_cut):
    assert_none(checks.late_deliveries(redis_cut.run), "late live deliveries after Redis returned")
    assert_recovered(redis_cut, checks.LIVE_BOUND)


@pytest.mark.faults_quick
def test_redis_cut_new_sockets_work_on_every_process_afterwards(redis_cut):
    assert_none(redis_cut.problems("probes"), "new sockets after the outage")


@pytest.fixture(scope="module")
def redis_freeze(fault_db):
    # Longer than the 10 s every send must be answered in: sends need PostgreSQL, not Redis.
    return outage_scenario(
        "redis_freeze",
        "Redis frozen for 11 s",
        lambda s: s.redis.freeze(),
        lambda s: s.redis.restore(),
        outage=11,
        after=6,
    )


def test_redis_freeze_loses_duplicates_and_reorders_nothing(redis_freeze):
    assert_none(redis_freeze.problems(*INTEGRITY), "integrity")


def test_redis_freeze_every_send_is_answered_within_10s(redis_freeze):
    assert_none(redis_freeze.problems("unanswered"), "unanswered sends")


def test_redis_freeze_sockets_close_with_a_code_and_api_errors_are_json(redis_freeze):
    assert_none(redis_freeze.problems("close_codes", "api_errors_are_json"), "closes and API errors")


def test_redis_freeze_live_delivery_is_back_within_1s(redis_freeze):
    assert_none(checks.late_deliveries(redis_freeze.run), "late live deliveries after Redis returned")
    assert_recovered(redis_freeze, checks.LIVE_BOUND)


def test_redis_freeze_new_sockets_work_on_every_process_afterwards(redis_freeze):
    assert_none(redis_freeze.problems("probes"), "new sockets after the outage")
