"""Record validators of the kad DHT (go-libp2p-record v0.2.0 and masa's `db` namespace).

A record key is `/<namespace>/<rest>`; each namespace has a validator that says whether a value is
valid for its key and which of several valid values is best (`select`, an index). A namespace with
no validator is refused, as go's NamespacedValidator refuses it.

* `pk` (go PublicKeyValidator): the rest of the key is a peer ID's multihash bytes and the value
  the protobuf public key that hashes to it; all valid values are equal (select 0).
* `ipns` (boxo ipns, p2p/kad/ipns.py): a signed record of what a peer ID's name points to.
* `db` (masa-oracle pkg/network/kdht.go): any value is valid and select always picks index 0, so
  a newer PUT_VALUE replaces the stored record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from p2p.errors import P2PError
from p2p.identity import PeerId, PublicKey


@runtime_checkable
class RecordValidator(Protocol):
    def validate(self, key: bytes, value: bytes) -> bool: ...

    def select(self, key: bytes, values: list[bytes]) -> int: ...


def split_key(key: bytes) -> tuple[str, bytes] | None:
    """go record.SplitKey: `/ns/rest` -> ("ns", b"rest"); None for a key without a namespace."""
    if not key.startswith(b"/"):
        return None
    ns, sep, rest = key[1:].partition(b"/")
    if not sep or not ns:
        return None
    try:
        return ns.decode(), rest
    except UnicodeDecodeError:
        return None


class PublicKeyValidator:
    """`/pk/<peer ID bytes>` -> the public key of that peer ID."""

    def validate(self, key: bytes, value: bytes) -> bool:
        parts = split_key(key)
        if parts is None or parts[0] != "pk":
            return False
        try:
            expected = PeerId(parts[1])  # a valid multihash, as go's mh.Cast requires
            return PeerId.from_public_key(PublicKey.from_protobuf(value)) == expected
        except (P2PError, ValueError):
            return False

    def select(self, key: bytes, values: list[bytes]) -> int:
        return 0


class AcceptAll:
    """masa's `db` validator: everything is valid, the first value is the one kept."""

    def validate(self, key: bytes, value: bytes) -> bool:
        return True

    def select(self, key: bytes, values: list[bytes]) -> int:
        return 0


class _CallableValidator:
    """A plain `check(key, value) -> bool` as a validator whose select picks index 0."""

    def __init__(self, check: Callable[[bytes, bytes], bool]) -> None:
        self._check = check

    def validate(self, key: bytes, value: bytes) -> bool:
        return self._check(key, value)

    def select(self, key: bytes, values: list[bytes]) -> int:
        return 0


def as_validator(v: RecordValidator | Callable[[bytes, bytes], bool]) -> RecordValidator:
    if isinstance(v, RecordValidator):
        return v
    return _CallableValidator(v)


def default_validators() -> dict[str, RecordValidator]:
    """go-libp2p-kad-dht's defaults: `pk` and `ipns`."""
    from p2p.kad.ipns import IpnsValidator

    return {"pk": PublicKeyValidator(), "ipns": IpnsValidator()}
