"""Which config keys are secrets, and how URIs lose their passwords (graphs/masking.py, SPEC §7)."""

from __future__ import annotations

import logging

import pytest

from graphs.errors import Problem
from graphs.masking import MaskingFilter, is_secret_key, mask_problem, mask_secrets, mask_text

SECRET = ["password", "passwd", "pwd", "passphrase", "secret", "token", "api_key", "apiKey", "API-KEY",
          "access_key", "secret_key", "private_key", "client_secret", "auth_token", "accessToken",
          "sasl_plain_password", "ssl_keyfile_password", "ssl_password", "aws_secret_access_key", "credentials"]
NOT_SECRET = ["key", "key_attribute", "key_column", "keys", "partition_key", "sort_key", "primary_key", "keyfile",
              "ssl_keyfile", "username", "user", "host", "tokens_per_second", "password_file_hint_x", "monkey"]


@pytest.mark.parametrize("name", SECRET)
def test_secret_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize("name", NOT_SECRET)
def test_names_that_only_look_like_secrets(name: str) -> None:
    assert not is_secret_key(name)


@pytest.mark.parametrize("text,masked", [
    ("redis://app:pw@r1:6379/0", "redis://app:***@r1:6379/0"),
    ("sql://:only-pw@db/test", "sql://:***@db/test"),
    ("sql://user@db/test", "sql://user@db/test"),
    ("kafka://topic/orders", "kafka://topic/orders"),
    ("redis://list/x?host=h&password=pw&db=2", "redis://list/x?host=h&password=***&db=2"),
    ("redis://list/x?key=id", "redis://list/x?key=id"),
    ("failed: cannot reach amqp://u:p%40ss@mq:5672/ (refused)", "failed: cannot reach amqp://u:***@mq:5672/ (refused)"),
])
def test_uri_passwords_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_nested_configs_are_masked_and_copied() -> None:
    config = {"a": [{"token": "t", "key": "k"}], "producer_config": {"sasl_plain_password": "p"}, "password": None}
    assert mask_secrets(config) == {"a": [{"token": "***", "key": "k"}],
                                    "producer_config": {"sasl_plain_password": "***"}, "password": None}
    assert config["a"][0]["token"] == "t"


def test_the_log_filter_masks_messages_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "lost %s", ("redis://u:pw@h/0",), None)
    assert MaskingFilter().filter(record) and record.getMessage() == "lost redis://u:***@h/0"
    try:
        raise ConnectionError("sql://u:pw@db refused")
    except ConnectionError as exc:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, (type(exc), exc, exc.__traceback__))
    MaskingFilter().filter(failed)
    assert "pw@" not in logging.Formatter().format(failed) and "sql://u:***@db" in failed.exc_text


@pytest.mark.parametrize("where,value,shown", [
    ("publishers[0].config.password", "pw", "'***'"),
    ('publishers[0].config["api-key"]', "k", "'***'"),
    ("publishers[0].config.key", "id", "'id'"),
    ("subscribers[1].config.source", "redis://u:pw@h/0", "'redis://u:***@h/0'"),
])
def test_check_lines_mask_secret_values(where: str, value: str, shown: str) -> None:
    line = str(mask_problem(Problem("d.json", where, value, "bad value")))
    assert line == f"d.json: {where}: bad value (got {shown})"
