"""Settings of throttling, Redis, metrics and logs: defaults, and bad values named by their variable."""

from __future__ import annotations

import pytest

from couponsvc.adapters.throttle_store import RedisThrottleStore
from couponsvc.domain.errors import ConfigurationError
from couponsvc.domain.throttle import Bucket, RateLimit
from couponsvc.settings import load_settings


def test_defaults_throttle_off_guesses_on_metrics_on_text_logs() -> None:
    s = load_settings({})
    assert s.throttle_user is None and s.throttle_developer_token is None
    assert s.throttle_code_guesses == RateLimit(100, 3600)
    assert (s.redis_url, s.metrics, s.metrics_port, s.log_format) == (None, True, None, "text")


def test_limits_parse_and_can_be_turned_off() -> None:
    s = load_settings({"COUPONSVC_THROTTLE_USER": "50/10", "COUPONSVC_THROTTLE_DEVELOPER_TOKEN": "1000/60s",
                       "COUPONSVC_THROTTLE_CODE_GUESSES": "off"})
    assert s.throttle_user == RateLimit(50, 10) and s.throttle_developer_token == RateLimit(1000, 60)
    assert s.throttle_code_guesses is None


@pytest.mark.parametrize("key, value, needle", [
    ("THROTTLE_USER", "fifty", "COUPONSVC_THROTTLE_USER"),
    ("THROTTLE_USER", "10/0", "SECONDS"),
    ("THROTTLE_DEVELOPER_TOKEN", "0/60", "COUPONSVC_THROTTLE_DEVELOPER_TOKEN"),
    ("THROTTLE_CODE_GUESSES", "100", "N/SECONDS"),
    ("REDIS_URL", "http://:Hidden-Pw@cache:6379", "COUPONSVC_REDIS_URL"),
    ("LOG_FORMAT", "xml", "COUPONSVC_LOG_FORMAT"),
    ("METRICS", "maybe", "COUPONSVC_METRICS"),
    ("METRICS_PORT", "http", "COUPONSVC_METRICS_PORT"),
])
def test_bad_values_name_the_variable(key: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({f"COUPONSVC_{key}": value})
    assert needle in str(caught.value)
    assert "Hidden-Pw" not in str(caught.value)


def test_an_unreachable_redis_lets_calls_through_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    from tests.support.server import free_port

    store = RedisThrottleStore(f"redis://127.0.0.1:{free_port()}/0")
    try:
        bucket = Bucket("user:1", "user", RateLimit(1, 60))
        assert [store.admit([bucket]) for _ in range(3)] == [None, None, None]
        assert store.failures == 1  # then left alone for a while: no timeout added to every call
        assert "Redis unavailable" in caplog.text
        store.RETRY_SECONDS = 0.0
        store._down_until = 0.0
        assert store.admit([bucket]) is None and store.failures == 2  # tried again after the pause
    finally:
        store.close()


def test_log_lines_are_redacted_as_a_safety_net() -> None:
    import json
    import logging

    from couponsvc.logformat import JsonFormatter, redact

    line = redact("x access_token=abc123 DeveloperToken: dev_zzz postgresql://u:pw9@h/db Bearer cst_x "
                  "tracking_id=0f0e0d0c-0b0a-0908-0706-050403020100 the token is fine")
    for secret in ("abc123", "dev_zzz", "pw9", "cst_x"):
        assert secret not in line
    assert "tracking_id=0f0e0d0c-0b0a-0908-0706-050403020100 the token is fine" in line
    tid = "0f0e0d0c-0b0a-0908-0706-050403020100"
    record = logging.LogRecord("couponsvc.api", logging.ERROR, __file__, 1,
                               "tracking_id=%s failed for smtp://mailer:Pw-77@relay:25", (tid,), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["tracking_id"] == tid  # read from the text of lines that do not pass it as a field
    assert "Pw-77" not in entry["message"] and entry["level"] == "ERROR" and entry["logger"] == "couponsvc.api"
