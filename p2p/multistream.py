"""multistream-select 1.0 as a sans-IO core.

Specs: https://github.com/multiformats/multistream-select ("Protocol") and
https://github.com/libp2p/specs/blob/master/connections/README.md ("Protocol Negotiation").

Theory of operation. Every message is `uvarint(L) + text + "\\n"` with `L` counting the newline and
capped at 1024 (go's reader limit). `MessageReader` is the incremental parser: it is fed bytes and
yields one message body at a time, never consuming a byte past the message it returns, so whatever
follows the final message of a negotiation (go's lazy dialer pipelines application data, or a FIN
may follow the proposal) is handed back untouched as `leftover` for the driver to `unread`.

Two machines share the h11 shape: `receive_data(data) -> list[Event]`, `data_to_send() -> bytes`.

* `Dialer` (go-multistream `SelectOneOf`): queues header + first proposal as one write without
  waiting for the listener's header; on `na` proposes the next protocol, one at a time (never
  pipelining a second proposal: a go listener would feed it to the agreed protocol as data). `na`
  on every protocol -> `NegotiationFailed(tried)`; any other reply -> `UnrecognizedResponse`.
* `Listener` (go-multistream `Negotiate`): queues its header at once, requires the dialer's header
  first, echoes a supported proposal, answers `na` otherwise. It never echoes
  `/libp2p/simultaneous-connect` (echoing it would start go's tie-break exchange,
  https://github.com/libp2p/specs/blob/master/connections/simopen.md). `ls` is
  answered with the list when the listener knows its protocols as a collection, `na` when it only
  has a predicate. go puts no bound on `na` rounds; we cap them.
* `ListRequester`: dialer side of `ls`, reading the reply as rust-libp2p writes it (each protocol
  length-prefixed and newline-terminated, a final lone `\\n`) and tolerating the older variants.

Remote misbehaviour raises a `MultistreamError` (a `RemoteProtocolError`) and moves the machine to an
error state; misuse of a machine by our own code raises `LocalProtocolError`.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from p2p import varint
from p2p.errors import LocalProtocolError, NegotiationFailed, RemoteProtocolError

PROTOCOL_ID = "/multistream/1.0.0"
NA = "na"
LS = "ls"
SIMOPEN = "/libp2p/simultaneous-connect"
# go-multistream reader: "incoming message was too large" above 1024 bytes including the newline.
MAX_MESSAGE_LEN = 1024
# Our own bound on rejected proposals (go has none: a peer could keep us answering `na`).
DEFAULT_MAX_NA_ROUNDS = 32
# An `ls` reply is one message holding many; rust-libp2p frames allow 16 KiB, so we accept that much.
MAX_LS_RESPONSE_LEN = 16 * 1024
MAX_LS_PROTOCOLS = 1000


class MultistreamError(RemoteProtocolError):
    """The remote broke multistream-select."""


class MessageTooLarge(MultistreamError):
    """A length prefix above the limit (checked before any body byte is buffered)."""


class MalformedMessage(MultistreamError):
    """Bad varint, missing trailing newline, or text that is not UTF-8."""


class UnexpectedHeader(MultistreamError):
    """The first message was not `/multistream/1.0.0`."""


class UnrecognizedResponse(MultistreamError):
    """The listener answered a proposal with something other than its echo or `na`."""


class TooManyRounds(MultistreamError):
    """The dialer made more rejected proposals than the listener allows."""


class UnexpectedEOF(MultistreamError):
    """The stream ended before negotiation finished (raised by drivers)."""


def encode_message(text: str) -> bytes:
    """Frame one message; refuses text go's reader would reject, since that is our own bug."""
    body = text.encode("utf-8") + b"\n"
    if len(body) > MAX_MESSAGE_LEN:
        raise LocalProtocolError(f"multistream message too long ({len(body)} > {MAX_MESSAGE_LEN})")
    return varint.encode(len(body)) + body


def encode_ls_response(protocols: Sequence[str]) -> bytes:
    """The `ls` reply as rust-libp2p writes it: one message holding framed protocols and a `\\n`."""
    inner = b"".join(encode_message(p) for p in protocols) + b"\n"
    return varint.encode(len(inner)) + inner


def decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("multistream message is not UTF-8") from None


class MessageReader:
    """Incremental parser: buffers at most one message plus whatever was fed after it."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def next_message(self, limit: int = MAX_MESSAGE_LEN) -> bytes | None:
        """Pop one message body (newline stripped), or None if it is not complete yet."""
        try:
            head = varint.decode(self._buf)
        except varint.VarintError as exc:
            raise MalformedMessage(f"bad multistream length prefix: {exc}") from None
        if head is None:
            return None
        length, start = head
        if length > limit:
            raise MessageTooLarge(f"incoming message was too large ({length} > {limit})")
        if length == 0:
            raise MalformedMessage("message did not have trailing newline (empty)")
        end = start + length
        if len(self._buf) < end:
            return None
        if self._buf[end - 1] != 0x0A:
            raise MalformedMessage("message did not have trailing newline")
        body = bytes(self._buf[start : end - 1])
        del self._buf[:end]
        return body

    def take_rest(self) -> bytes:
        """Everything fed but not consumed: bytes that belong to the next layer."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


# ---------------------------------------------------------------------------------------- events


class Event:
    """Base class of what the machines report."""


@dataclass(frozen=True)
class HeaderReceived(Event):
    """The peer's `/multistream/1.0.0` arrived."""


@dataclass(frozen=True)
class ProtocolRejected(Event):
    """A proposal was answered with `na` (by the remote for a Dialer, by us for a Listener)."""

    protocol: str


@dataclass(frozen=True)
class ListRequested(Event):
    """The dialer sent `ls` (the Listener has queued its answer)."""


@dataclass(frozen=True)
class ProtocolAgreed(Event):
    """Negotiation is over; `leftover` is application data that arrived with the final message."""

    protocol: str
    leftover: bytes


@dataclass(frozen=True)
class ProtocolsListed(Event):
    """The listener's answer to `ls`."""

    protocols: list[str]


class State(enum.Enum):
    AWAIT_HEADER = "await-header"
    AWAIT_REPLY = "await-reply"  # Dialer/ListRequester: proposal or `ls` in flight
    AWAIT_PROPOSAL = "await-proposal"  # Listener
    DONE = "done"
    ERROR = "error"


class Machine(abc.ABC):
    """Shared plumbing: output queue, reader, state and the error transition."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._reader = MessageReader()
        self.state = State.AWAIT_HEADER
        self.leftover = b""
        self.agreed: str | None = None

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def receive_data(self, data: bytes) -> list[Event]:
        if self.state is State.DONE:
            raise LocalProtocolError("negotiation already finished; data belongs to the protocol")
        if self.state is State.ERROR:
            raise LocalProtocolError("negotiation already failed")
        self._reader.feed(data)
        events: list[Event] = []
        try:
            # mypy narrows self.state from the checks above; handling a message changes it
            while self.state is not State.DONE:  # type: ignore[comparison-overlap]
                body = self._reader.next_message(self._limit())
                if body is None:
                    break
                self._handle(body, events)
        except BaseException:
            self.state = State.ERROR
            raise
        return events

    def _finish(self, protocol: str, events: list[Event]) -> None:
        self.state = State.DONE
        self.agreed = protocol
        self.leftover = self._reader.take_rest()
        events.append(ProtocolAgreed(protocol, self.leftover))

    def _limit(self) -> int:
        return MAX_MESSAGE_LEN

    @abc.abstractmethod
    def _handle(self, body: bytes, events: list[Event]) -> None:
        """Act on one complete message body (the dialer, listener and `ls` requester differ)."""


class Dialer(Machine):
    """Dialer side: header + first proposal pipelined, then one proposal per `na`."""

    def __init__(self, protocols: Sequence[str]) -> None:
        super().__init__()
        if isinstance(protocols, str) or not protocols:
            raise LocalProtocolError("Dialer needs a non-empty sequence of protocol ids")
        self.protocols = list(protocols)
        for p in self.protocols:
            encode_message(p)  # validate lengths up front, before anything is sent
        self.tried: list[str] = []
        self._out += encode_message(PROTOCOL_ID) + self._propose()
        self._header_seen = False

    @property
    def current(self) -> str:
        return self.tried[-1]

    def _propose(self) -> bytes:
        proto = self.protocols[len(self.tried)]
        self.tried.append(proto)
        return encode_message(proto)

    def _handle(self, body: bytes, events: list[Event]) -> None:
        msg = decode_text(body)
        if self.state is State.AWAIT_HEADER:
            if msg != PROTOCOL_ID:
                raise UnexpectedHeader(f"listener spoke {msg[:80]!r}, not {PROTOCOL_ID}")
            self.state = State.AWAIT_REPLY
            events.append(HeaderReceived())
            return
        if msg == self.current:
            self._finish(msg, events)
        elif msg == NA:
            events.append(ProtocolRejected(self.current))
            if len(self.tried) == len(self.protocols):
                raise NegotiationFailed(self.tried)
            self._out += self._propose()
        else:
            raise UnrecognizedResponse(f"unrecognized response {msg[:80]!r} to {self.current!r}")


_HEADER_MESSAGE = encode_message(PROTOCOL_ID)


def quick_listen(data: bytes, accepts: Callable[[str], bool]) -> tuple[str, bytes, bytes] | None:
    """The common listener exchange in one step, without building a `Listener`.

    When `data` holds the header and one short (< 128 bytes), accepted proposal, return
    `(protocol, reply, leftover)`: `reply` is our header + the echo, `leftover` what followed the
    proposal. Anything else (partial, `ls`, `na`, unsupported, malformed) returns None: the caller
    feeds the same bytes to a `Listener`, which owns every other case and every error.
    """
    h = len(_HEADER_MESSAGE)
    if len(data) <= h or not data.startswith(_HEADER_MESSAGE):
        return None
    length = data[h]
    if length < 2 or length >= 0x80:  # one-byte varint, non-empty text
        return None
    end = h + 1 + length
    if len(data) < end or data[end - 1] != 0x0A:
        return None
    try:
        msg = data[h + 1 : end - 1].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if msg in (SIMOPEN, NA, LS) or not accepts(msg):
        return None
    return msg, _HEADER_MESSAGE + data[h:end], data[end:]


class Listener(Machine):
    """Listener side: header at once, echo a supported proposal, `na` for the rest."""

    def __init__(
        self,
        supported: Collection[str] | Callable[[str], bool],
        *,
        max_na_rounds: int = DEFAULT_MAX_NA_ROUNDS,
    ) -> None:
        super().__init__()
        if max_na_rounds < 0:
            raise LocalProtocolError("max_na_rounds must be >= 0")
        if isinstance(supported, (str, bytes)):
            raise LocalProtocolError("supported must be a collection of ids or a predicate")
        self._listing: list[str] | None
        if isinstance(supported, Collection):
            names = list(supported) if isinstance(supported, Sequence) else sorted(supported)
            self._listing = [p for p in names if p != SIMOPEN]
            members = frozenset(self._listing)
            self._accepts: Callable[[str], bool] = members.__contains__
        elif callable(supported):
            self._listing = None
            self._accepts = supported
        else:
            raise LocalProtocolError("supported must be a collection of ids or a predicate")
        self.max_na_rounds = max_na_rounds
        self.na_rounds = 0
        self._out += encode_message(PROTOCOL_ID)

    def _handle(self, body: bytes, events: list[Event]) -> None:
        msg = decode_text(body)
        if self.state is State.AWAIT_HEADER:
            if msg != PROTOCOL_ID:
                raise UnexpectedHeader(f"client connected with incorrect version {msg[:80]!r}")
            self.state = State.AWAIT_PROPOSAL
            events.append(HeaderReceived())
            return
        if msg == LS and self._listing is not None:
            self._count_round()
            self._out += encode_ls_response(self._listing)
            events.append(ListRequested())
        elif msg not in (SIMOPEN, NA, LS) and self._accepts(msg):
            self._out += encode_message(msg)
            self._finish(msg, events)
        else:
            self._count_round()
            self._out += encode_message(NA)
            events.append(ProtocolRejected(msg))

    def _count_round(self) -> None:
        self.na_rounds += 1
        if self.na_rounds > self.max_na_rounds:
            raise TooManyRounds(f"more than {self.max_na_rounds} rejected proposals")


class ListRequester(Machine):
    """Dialer side of `ls`: header + `ls` in one write, then the listing (or `na` from go)."""

    def __init__(self) -> None:
        super().__init__()
        self._out += encode_message(PROTOCOL_ID) + encode_message(LS)
        self.protocols: list[str] | None = None

    def _limit(self) -> int:
        return MAX_MESSAGE_LEN if self.state is State.AWAIT_HEADER else MAX_LS_RESPONSE_LEN

    def _handle(self, body: bytes, events: list[Event]) -> None:
        if self.state is State.AWAIT_HEADER:
            msg = decode_text(body)
            if msg != PROTOCOL_ID:
                raise UnexpectedHeader(f"listener spoke {msg[:80]!r}, not {PROTOCOL_ID}")
            self.state = State.AWAIT_REPLY
            events.append(HeaderReceived())
            return
        # The listing holds binary length prefixes, so it is parsed as bytes, not text.
        if body == NA.encode():  # go-multistream >= 0.3.0 dropped `ls` and answers `na`
            raise NegotiationFailed([LS], "peer does not implement ls")
        self.protocols = parse_ls_body(body + b"\n")
        self.state = State.DONE
        self.leftover = self._reader.take_rest()
        events.append(ProtocolsListed(list(self.protocols)))


def parse_ls_body(body: bytes) -> list[str]:
    """Parse an `ls` reply body (with its final newline).

    Accepted forms: rust-libp2p (framed protocols then a lone `\\n`), old go-multistream (framed
    protocols, nothing after), and old rust-libp2p (a protocol count varint first).
    """
    try:
        return _parse_framed_list(body, 0)
    except MultistreamError as first:
        head = _varint_at(body, 0)
        if head is None:
            raise first from None
        count, start = head
        protocols = _parse_framed_list(body, start)
        if len(protocols) != count:
            raise MalformedMessage("ls reply count does not match its entries") from None
        return protocols


def _varint_at(buf: bytes, offset: int) -> tuple[int, int] | None:
    try:
        return varint.decode(buf, offset)
    except varint.VarintError:
        return None


def _parse_framed_list(body: bytes, offset: int) -> list[str]:
    protocols: list[str] = []
    i = offset
    while i < len(body):
        if body[i:] == b"\n":
            break
        if len(protocols) >= MAX_LS_PROTOCOLS:
            raise MalformedMessage("ls reply lists too many protocols")
        head = _varint_at(body, i)
        if head is None:
            raise MalformedMessage("bad length prefix in ls reply")
        length, start = head
        end = start + length
        if length == 0 or length > MAX_MESSAGE_LEN or end > len(body) or body[end - 1] != 0x0A:
            raise MalformedMessage("bad entry in ls reply")
        protocols.append(decode_text(body[start : end - 1]))
        i = end
    return protocols
