"""The speaker's start-up reads (Speaker._list_at_start): an API server that does not answer in time gets the
start retried (the ApiError goes up to runtime.process, which retries temporary ones); one that refuses
stops it with a message saying what the speaker needs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from metallb_py.k8s.errors import ApiUnavailableError, ForbiddenError, NotFoundError
from metallb_py.k8s.resources import IP_ADDRESS_POOLS
from metallb_py.speaker.speaker import Speaker, SpeakerError


class Refusing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def list(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


def list_at_start(error: Exception) -> list[Any]:
    stub = SimpleNamespace(client=Refusing(error))
    return Speaker._list_at_start(stub, IP_ADDRESS_POOLS, "metallb-system")  # type: ignore[arg-type]


def test_no_answer_in_time_is_raised_as_is_so_the_start_is_retried() -> None:
    error = ApiUnavailableError(0, "Timeout", "no answer: read timed out", request="GET ipaddresspools")
    assert error.temporary
    with pytest.raises(ApiUnavailableError):
        list_at_start(error)


def test_a_refusal_stops_the_start_naming_what_is_needed() -> None:
    with pytest.raises(SpeakerError, match="needs to list them"):
        list_at_start(ForbiddenError(403, "Forbidden", "ipaddresspools is forbidden"))


def test_a_kind_not_installed_reads_as_none() -> None:
    assert list_at_start(NotFoundError(404, "NotFound", "the server could not find the resource")) == []
