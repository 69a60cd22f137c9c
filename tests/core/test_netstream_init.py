"""NetStream sets the slots of its three classes in one __init__ (a stream per request on both
sides of a connection, where two super().__init__ calls were two Python frames per stream): every
slot is set, and to what LazyStream's own __init__ gives the same stream."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from p2p.host import MeteredNetStream, NetStream
from p2p.negotiate import LazyStream


def _slots(cls: type) -> list[str]:
    return [name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())]


def _state(stream: object, names: list[str]) -> dict[str, object]:
    out = {}
    for name in names:
        value = getattr(stream, name)  # AttributeError: a slot the __init__ missed
        out[name] = getattr(value, "__func__", value)  # a bound method: which one
    return out


@pytest.mark.parametrize("cls", [NetStream, MeteredNetStream])
@pytest.mark.parametrize("lazy_timeout", [None, 7.5])
def test_every_slot_is_set_as_lazystream_sets_it(cls: type[NetStream],
                                                  lazy_timeout: float | None) -> None:
    inner = object()
    conn = SimpleNamespace(peer_id="peer")
    stream = cls(inner, "/p/1.0.0", conn, lazy_timeout=lazy_timeout)  # type: ignore[arg-type]
    names = _slots(cls)
    assert {"inner", "_buf", "_recv", "protocol", "timeout", "_hello", "conn"} <= set(names)
    got = _state(stream, names)
    if lazy_timeout is None:
        ref = LazyStream(inner, "/p/1.0.0", lazy=False)  # type: ignore[arg-type]
    else:
        ref = LazyStream(inner, "/p/1.0.0", timeout=lazy_timeout)  # type: ignore[arg-type]
    lazy_names = _slots(LazyStream)
    assert {k: got[k] for k in lazy_names} == _state(ref, lazy_names)
    assert stream.negotiating is (lazy_timeout is not None)
    assert (stream.conn, stream.remote_peer) == (conn, "peer")
