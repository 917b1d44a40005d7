"""The Responder's Python surface that needs no privileges: argument checks, state errors, exceptions."""

from __future__ import annotations

import pytest

from metallb_py import errors
from metallb_py._core import Responder
from metallb_py.errors import (
    InterfaceNotFoundError,
    MetalLBError,
    NetnsError,
    NoMacAddressError,
    PermissionDeniedError,
    ResponderError,
)


def test_exception_classes_form_one_tree() -> None:
    for cls in (InterfaceNotFoundError, PermissionDeniedError, NoMacAddressError, NetnsError):
        assert issubclass(cls, ResponderError)
        assert cls.__name__ in errors.__all__
    assert issubclass(ResponderError, MetalLBError)
    assert issubclass(PermissionDeniedError, PermissionError)
    assert issubclass(InterfaceNotFoundError, LookupError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interfaces": []}, "at least one interface"),
        ({"interfaces": ["eth0", "eth0"]}, "listed twice"),
        ({"interfaces": ["eth0"], "gratuitous_interval": 0.001}, "gratuitous interval"),
        ({"interfaces": ["eth0"], "gratuitous_interval": -1.0}, "non-negative"),
        ({"interfaces": ["eth0"], "refresh_interval": 0.0}, "refresh interval"),
    ],
)
def test_constructor_refuses_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Responder(**kwargs)  # type: ignore[arg-type]


def test_calls_before_start_say_it_is_not_running() -> None:
    r = Responder(["eth0"], netns="somewhere")
    assert not r.running
    assert r.interfaces == ["eth0"] and r.netns == "somewhere"
    assert r.announced() == {}
    calls = (
        lambda: r.announce("198.51.100.10"),
        lambda: r.withdraw("198.51.100.10"),
        r.stats,
        r.macs,
        r.conflicts,
    )
    for call in calls:
        with pytest.raises(ResponderError, match="not running"):
            call()
    r.stop()  # stopping a stopped responder is fine
    assert repr(r) == "Responder(interfaces=['eth0'], netns='somewhere', running=False)"


def test_bad_address_is_a_value_error_before_anything_else() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        Responder(["eth0"]).announce("not-an-ip")
