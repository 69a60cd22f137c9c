"""What a kad server keeps for others: provider records and values, bounded and expiring.

Go keeps providers 48 h (ProvideValidity) and records 48 h (MaxRecordAge). Ours are in memory and
capped in keys and entries per key, so ADD_PROVIDER / PUT_VALUE floods cost bounded memory. No
clock: callers pass `now`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from p2p.identity import PeerId
from p2p.kad.validators import RecordValidator, as_validator

PROVIDE_VALIDITY = 48 * 3600.0
MAX_RECORD_AGE = 48 * 3600.0

# namespace (the part between the first two slashes of a record key) -> check(key, value) -> ok,
# or a RecordValidator (p2p/kad/validators.py) that also selects the best of several values
Validator = Callable[[bytes, bytes], bool] | RecordValidator


class ProviderStore:
    """Providers by key, each with the addresses its ADD_PROVIDER carried (go puts those in its
    peerstore for ProviderAddrTTL and answers GET_PROVIDERS with them)."""

    def __init__(self, *, max_keys: int = 4096, max_per_key: int = 64, max_addrs: int = 8,
                 ttl: float = PROVIDE_VALIDITY) -> None:
        self._keys: OrderedDict[bytes, OrderedDict[PeerId, tuple[float, list[bytes]]]] = OrderedDict()
        self.max_keys = max_keys
        self.max_per_key = max_per_key
        self.max_addrs = max_addrs
        self.ttl = ttl

    def add(self, key: bytes, provider: PeerId, now: float, addrs: list[bytes] | None = None) -> None:
        """Record `provider` for `key` (again: refreshed, its addresses replaced when given)."""
        provs = self._keys.get(key)
        if provs is None:
            provs = self._keys[key] = OrderedDict()
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        old = provs.get(provider)
        kept = list(addrs[: self.max_addrs]) if addrs else (old[1] if old else [])
        provs[provider] = (now, kept)
        provs.move_to_end(provider)
        while len(provs) > self.max_per_key:
            provs.popitem(last=False)

    def get(self, key: bytes, now: float) -> list[PeerId]:
        """The live providers of `key`, oldest announcement first."""
        return [peer for peer, _ in self.get_with_addrs(key, now)]

    def get_with_addrs(self, key: bytes, now: float) -> list[tuple[PeerId, list[bytes]]]:
        """The live providers of `key` with the binary multiaddrs they announced."""
        provs = self._keys.get(key)
        if not provs:
            return []
        for peer in [p for p, (t, _) in provs.items() if now - t > self.ttl]:
            del provs[peer]
        return [(peer, addrs) for peer, (_, addrs) in provs.items()]

    def __len__(self) -> int:
        return len(self._keys)


def record_namespace(key: bytes) -> str | None:
    """`/db/abc` -> `db`; None when the key has no namespace."""
    if not key.startswith(b"/"):
        return None
    ns, sep, _ = key[1:].partition(b"/")
    if not sep or not ns:
        return None
    try:
        return ns.decode()
    except UnicodeDecodeError:
        return None


class RecordStore:
    """Values by key, accepted only for namespaces with a validator (go rejects the others)."""

    def __init__(self, validators: dict[str, Validator] | None = None, *, max_records: int = 4096,
                 max_age: float = MAX_RECORD_AGE) -> None:
        self.validators = {ns: as_validator(v) for ns, v in (validators or {}).items()}
        self._records: OrderedDict[bytes, tuple[bytes, float, str]] = OrderedDict()
        self.max_records = max_records
        self.max_age = max_age

    def validate(self, key: bytes, value: bytes) -> bool:
        ns = record_namespace(key)
        check = self.validators.get(ns) if ns is not None else None
        return check is not None and check.validate(key, value)

    def select(self, key: bytes, values: list[bytes]) -> int:
        """The index of the best of `values` (all valid) for `key`, by its namespace's rule."""
        ns = record_namespace(key)
        check = self.validators.get(ns) if ns is not None else None
        if check is None or not values:
            raise ValueError(f"no validator for {key!r}")
        best = check.select(key, values)
        return best if 0 <= best < len(values) else 0

    def put(self, key: bytes, value: bytes, now: float, time_received: str) -> None:
        self._records[key] = (value, now, time_received)
        self._records.move_to_end(key)
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)

    def get(self, key: bytes, now: float) -> tuple[bytes, str] | None:
        item = self._records.get(key)
        if item is None:
            return None
        value, stored_at, received = item
        if now - stored_at > self.max_age:
            del self._records[key]
            return None
        return value, received
