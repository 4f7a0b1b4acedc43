"""The receiver's access line: gunicorn's line for its format, built without gunicorn's atoms, scrubbed."""
from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from webhooks.access_log import ACCESS_LOG_FORMAT, QUEUED
from webhooks.gunicorn_worker import ScrubbingLogger


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def access_logger(access_log_format: str = ACCESS_LOG_FORMAT) -> tuple[ScrubbingLogger, Lines]:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", access_log_format)
    logger = ScrubbingLogger(cfg)
    lines = Lines()
    logger.access_log.handlers = [lines]
    return logger, lines


def request(path: str = "/webhooks/zoho/Contacts", **environ) -> tuple:
    environ = {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "POST", "PATH_INFO": path, "RAW_URI": path,
               "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_X_WEBHOOK_TOKEN": "s3cret", **environ}
    response = SimpleNamespace(status="202 ACCEPTED", sent=57, headers=[("Content-Type", "application/json")])
    req = SimpleNamespace(headers=[("X-WEBHOOK-TOKEN", "s3cret"), ("HOST", "x")])
    return response, req, environ, timedelta(seconds=1, microseconds=2345)


@pytest.mark.parametrize("environ", [
    {QUEUED: "queued event e-1 module=Contacts record_id=4150868000000376008 source=zoho-workflow"},
    {},                                                            # nothing queued: "-"
    {"PATH_INFO": '/webhooks/forms/a"b', QUEUED: 'queued event e-2 module=Deals record_id=7 source=forms:a"b'},
    {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.0"},
    {"REMOTE_ADDR": ""},
])
def test_the_line_is_gunicorns_line_for_the_format(environ):
    logger, lines = access_logger()
    response, req, env, took = request(**environ)

    logger.access(response, req, env, took)
    glogging.Logger.access(logger, response, req, env, took)   # gunicorn's own, through its atoms

    ours, gunicorns = lines.lines
    assert ours == gunicorns
    assert ours.endswith(environ.get(QUEUED, "-").replace('"', '\\"'))
    assert " 202 57 1.002345s " in ours and "s3cret" not in ours


def test_no_line_carries_a_token_or_query_string():
    logger, lines = access_logger()
    response, req, environ, took = request(path="/webhooks/forms/token=abc")
    environ[QUEUED] = "queued event e-3 module=Deals record_id=7 source=forms:x?token=abc"

    logger.access(response, req, environ, took)

    [line] = lines.lines
    assert "abc" not in line and "token=<removed>" in line


def test_another_format_is_written_by_gunicorn():
    logger, lines = access_logger('%(m)s %(U)s %(s)s %({host}i)s')
    logger.access(*request())
    assert lines.lines == ["POST /webhooks/zoho/Contacts 202 x"]


def test_a_disabled_access_log_writes_nothing():
    cfg = Config()
    logger = ScrubbingLogger(cfg)
    lines = Lines()
    logger.access_log.handlers = [lines]
    logger.access(*request())
    assert lines.lines == []
