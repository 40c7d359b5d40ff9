"""Drift warnings and response validation shared by the API sources."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from iocscope.errors import BadResponseError
from iocscope.sources.drift import (
    expect_object,
    parse_response,
    reset_drift_warnings,
    warn_drift,
)

LOGGER = logging.getLogger("iocscope.sources.replay")


@pytest.fixture(autouse=True)
def fresh_drift() -> None:
    # Drift warnings are logged once per process; each test starts from none.
    reset_drift_warnings()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_warn_drift_default_message(caplog: pytest.LogCaptureFixture) -> None:
    warn_drift(LOGGER, "replay", "first_seen", "last spring")

    assert warnings(caplog) == [
        "source=replay field=first_seen has an unexpected value 'last spring'; it is ignored "
        "(the provider's API may have changed)"
    ]
    [record] = caplog.records
    assert record.name == "iocscope.sources.replay"
    assert record.args == {"source": "replay", "field": "first_seen", "value": "last spring"}


def test_warn_drift_once_per_field(caplog: pytest.LogCaptureFixture) -> None:
    warn_drift(LOGGER, "replay", "tags", "a")
    warn_drift(LOGGER, "replay", "tags", "b")
    warn_drift(LOGGER, "replay", "score", "high")
    warn_drift(LOGGER, "other", "tags", "c")

    assert warnings(caplog) == [
        "source=replay field=tags has an unexpected value 'a'; it is ignored "
        "(the provider's API may have changed)",
        "source=replay field=score has an unexpected value 'high'; it is ignored "
        "(the provider's API may have changed)",
        "source=other field=tags has an unexpected value 'c'; it is ignored "
        "(the provider's API may have changed)",
    ]


def test_warn_drift_own_message(caplog: pytest.LogCaptureFixture) -> None:
    message = "source=%(source)s odd %(field)s %(value)r"

    warn_drift(LOGGER, "replay", "risk", "severe", message)

    assert warnings(caplog) == ["source=replay odd risk 'severe'"]


def test_warn_drift_value_shortened(caplog: pytest.LogCaptureFixture) -> None:
    warn_drift(LOGGER, "replay", "name", "x" * 200)

    [message] = warnings(caplog)
    assert f"value '{'x' * 79}; it is ignored" in message


def test_reset_drift_warnings(caplog: pytest.LogCaptureFixture) -> None:
    warn_drift(LOGGER, "replay", "tags", "a")

    reset_drift_warnings()
    warn_drift(LOGGER, "replay", "tags", "b")

    assert len(warnings(caplog)) == 2


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    count: int
    origin: str = ""

    @field_validator("origin", mode="before")
    @classmethod
    def from_context(cls, value: Any, info: ValidationInfo) -> Any:
        context = info.context if isinstance(info.context, dict) else {}
        return context.get("origin", value)


def test_parse_response_valid() -> None:
    answer = parse_response("replay", Answer, {"name": "a", "count": 2, "other": True})

    assert answer == Answer(name="a", count=2)


def test_parse_response_context() -> None:
    payload = {"name": "a", "count": 2, "origin": "body"}

    answer = parse_response("replay", Answer, payload, {"origin": "context"})

    assert answer.origin == "context"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"name": "a"},
            "replay: returned a response in an unexpected format (count: Field required)",
        ),
        (
            {"name": 3, "count": "many"},
            "replay: returned a response in an unexpected format "
            "(name: Input should be a valid string; "
            "count: Input should be a valid integer, unable to parse string as an integer)",
        ),
        (
            [{"name": "a", "count": 2}],
            "replay: returned a response in an unexpected format (a JSON list, not an object)",
        ),
    ],
    ids=["missing", "wrong-types", "list"],
)
def test_parse_response_invalid(payload: Any, message: str) -> None:
    with pytest.raises(BadResponseError) as info:
        parse_response("replay", Answer, payload)

    assert str(info.value) == message
    assert info.value.source == "replay"


def test_expect_object() -> None:
    payload = {"query_status": "ok"}

    assert expect_object("replay", payload) is payload


def test_expect_object_rejects_text() -> None:
    with pytest.raises(BadResponseError) as info:
        expect_object("replay", "ok")

    assert str(info.value) == (
        "replay: returned a response in an unexpected format (a JSON str, not an object)"
    )
