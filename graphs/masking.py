"""Secrets out of sight (SPEC §7): what views, the API and the log show of a DAG's config.

A config key is a secret when its name, in snake case (``apiKey`` is ``api_key``, ``-`` is
``_``), is one of :data:`SECRET_NAMES` or ends with one of :data:`SECRET_SUFFIXES`:
``password``, ``sasl_plain_password``, ``ssl_keyfile_password``, ``token``, ``auth_token``,
``secret``, ``client_secret``, ``api_key``, ``access_key``, ``private_key``... Names that
merely hold ``key`` are not: ``key``, ``key_attribute``, ``key_column``, ``partition_key``
name fields, not credentials. Its value, whatever it is, shows as ``"***"``.

In every string, the password of a URI (``scheme://user:PASSWORD@host``) and the values of
secret-named query parameters (``?password=...``) show as ``***`` too.

Usage::

    mask_secrets({"config": {"destination": "redis://app:pw@r1/x", "password": "pw", "key": "id"}})
    # {'config': {'destination': 'redis://app:***@r1/x', 'password': '***', 'key': 'id'}}
    mask_text("cannot reach sql://u:hunter2@db/test")   # 'cannot reach sql://u:***@db/test'
    mask_problem(Problem("d.json", "publishers[0].config.password", "pw", "must be a string"))  # value '***'
    install_log_masking()   # every handler of the root logger masks URIs in what it writes
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from graphs.errors import MISSING, Problem

MASK = "***"
SECRET_NAMES = frozenset({
    "password", "passwd", "pwd", "pass", "passphrase", "secret", "token", "credentials", "api_key", "apikey",
    "access_key", "secret_key", "private_key", "client_secret", "auth", "authorization",
})
SECRET_SUFFIXES = ("_password", "_passwd", "_pwd", "_passphrase", "_secret", "_token", "_credentials", "_api_key",
                   "_apikey", "_access_key", "_secret_key", "_private_key")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:)(?P<secret>[^\s/@]*)(?=@)")
_LAST_KEY = re.compile(r'(?:^|\.)(?P<plain>[A-Za-z0-9_-]+)$|\["(?P<quoted>(?:[^"\\]|\\.)*)"\]$')
_QUERY_VALUE = re.compile(r"(?P<head>[?&;](?P<name>[A-Za-z0-9_.-]+)=)(?P<value>[^&#\s\"']*)")


def is_secret_key(name: object) -> bool:
    """True when a config key's name says it holds a credential.

    >>> [is_secret_key(k) for k in ("password", "sasl_plain_password", "apiKey", "key", "key_attribute")]
    [True, True, True, False, False]
    """
    if not isinstance(name, str):
        return False
    snake = _CAMEL.sub("_", name).lower().replace("-", "_")
    return snake in SECRET_NAMES or snake.endswith(SECRET_SUFFIXES)


def mask_text(text: str) -> str:
    """``text`` with URI passwords and secret query values replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    text = _URI_PASSWORD.sub(lambda m: m["head"] + MASK if m["secret"] else m[0], text)
    return _QUERY_VALUE.sub(lambda m: m["head"] + MASK if is_secret_key(m["name"]) and m["value"] else m[0], text)


def mask_secrets(value: Any) -> Any:
    """A copy of a JSON-like ``value``: secret-named keys' values as ``"***"``, strings through
    :func:`mask_text`. Containers are copied; other values are returned as they are."""
    if isinstance(value, dict):
        return {key: MASK if is_secret_key(key) and item is not None else mask_secrets(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_problem(problem: Problem) -> Problem:
    """``problem`` with its value masked when its JSON path ends in a secret-named key, and URI
    passwords masked in its message (a ``check`` line a viewer may read)."""
    found = _LAST_KEY.search(problem.where)
    last = (found["plain"] or found["quoted"]) if found else None
    value = MASK if problem.value is not MISSING and is_secret_key(last) else mask_secrets(problem.value)
    return dataclasses.replace(problem, value=value, message=mask_text(problem.message))


class MaskingFilter(logging.Filter):
    """A handler filter: the formatted message with URI passwords masked (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:  # a traceback's text too (the formatter keeps what is set)
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Add a :class:`MaskingFilter` to every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
