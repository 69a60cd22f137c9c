"""The error vocabulary of the stack.

Every failure a peer can cause is a `RemoteProtocolError` (or a subclass); misuse by our own code is
`LocalProtocolError`. Both derive from `P2PError`, so a driver can catch one type at its edge and turn
it into a clean close without a stray traceback.
"""

from __future__ import annotations


class P2PError(Exception):
    """Base class of every error this package raises on purpose."""


class RemoteProtocolError(P2PError):
    """The remote peer broke a protocol rule (bad bytes, limits exceeded)."""


class LocalProtocolError(P2PError):
    """We were asked to do something the protocol forbids in the current state."""


class DecodeError(RemoteProtocolError):
    """Bytes from the network could not be decoded (varint, protobuf, key, multiaddr...)."""


class NegotiationFailed(P2PError):
    """multistream-select found no common protocol."""

    def __init__(self, tried: list[str] | tuple[str, ...], message: str = "") -> None:
        self.tried = list(tried)
        super().__init__(message or f"protocol negotiation failed: tried {self.tried}")


class HandshakeError(RemoteProtocolError):
    """The security handshake failed (bad signature, bad key, bad message)."""


class PeerIdMismatch(HandshakeError):
    """The remote proved an identity other than the one we dialled."""

    def __init__(self, expected: object, actual: object) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"peer id mismatch: expected {expected}, got {actual}")


class StreamReset(P2PError):
    """The stream was reset (by the remote if `remote` is true)."""

    def __init__(self, remote: bool = True, message: str = "") -> None:
        self.remote = remote
        super().__init__(message or ("stream reset by remote" if remote else "stream reset"))


class ConnectionClosed(P2PError):
    """The connection (or session) is gone."""


class DialError(P2PError):
    """A dial failed; the message says at which stage."""


class ListenError(P2PError):
    """Listening failed; the message names the address and the reason (e.g. address in use)."""


class InvalidMultiaddr(P2PError, ValueError):
    """A multiaddr given to the host (listen, connect) is not valid; the message says why."""

    def __init__(self, addr: object, reason: str) -> None:
        self.addr = addr
        self.reason = reason
        super().__init__(f"bad multiaddr {str(addr)!r}: {reason}")
