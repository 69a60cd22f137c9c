"""Raw TCP -> secure -> muxed, as one straight line (go-libp2p's upgrader is the model).

outbound: propose `/noise` lazily (Noise's first message in the same write) -> Noise XX as
          initiator (peer ID checked) -> yamux (early, or select `/yamux/1.0.0`) -> yamux client
inbound:  answer `/noise` (`na` to anything else, e.g. go's `/tls/1.0.0` or v0.24's
          `/libp2p/simultaneous-connect`; the reply goes with Noise's second message when the
          first came with the proposal) -> Noise XX as responder -> yamux server
When yamux is negotiated by multistream, what multistream read past its reply goes back to the
Noise stream and yamux runs on the Noise stream itself, not on a wrapper: its fast paths (pushed
reads, writes without waiting) are there whichever way the muxer was chosen.
The caller bounds each upgrade as a whole (TcpTransport: the dial timeout outbound,
`inbound_upgrade_timeout` inbound), so the Noise handshake has no timeout scope of its own here
(it had the same bound inside the caller's: two scopes per connection for one deadline), nor
has the lazy `/noise` proposal (go bounds its whole upgrade by one deadline too); multistream's
other negotiations keep their shorter `negotiation_timeout`.
Each failure is wrapped in an `UpgradeError` that names its stage. The result is an
`UpgradedConnection`: the `p2p.connection.MuxedConnection` that TCP hands the Host.

A traced connection (`trace`, a `p2p.trace.hooks.ConnTrace`) differs in two objects only: the raw
stream is wrapped so its bytes are reported, and the Noise core is the one that reports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
from multiaddr import Multiaddr

from p2p.config import HostConfig
from p2p.errors import P2PError
from p2p.identity import PeerId, PrivateKey, PublicKey
from p2p.mux.yamux_frame import INITIAL_STREAM_WINDOW
from p2p.mux.yamux_session import YamuxSession
from p2p.multistream import UnexpectedEOF, quick_listen
from p2p.negotiate import handle_protocol, lazy_hello, read_lazy_replies, select_protocol
from p2p.security.noise import NoiseHandshake
from p2p.security.noise_stream import NoiseStream, finish_handshake, new_handshake, send_now
from p2p.streams import BufferedStream, ByteStream

if TYPE_CHECKING:  # the trace package is imported only by a host that traces
    from p2p.trace.hooks import ConnTrace

YAMUX = "/yamux/1.0.0"
NOISE = "/noise"
#: the dialer's header + proposal, and the listener's reply when it agrees
_NOISE_HELLO = lazy_hello(NOISE)
_NOISE_ONLY = (NOISE,)
#: a dialer's first bytes: header, proposal and Noise's first message are under 100 bytes
_FIRST_READ = 4096


def _is_noise(protocol: str) -> bool:
    return protocol == NOISE


class UpgradeError(P2PError):
    def __init__(self, stage: str, cause: BaseException) -> None:
        self.stage = stage
        self.cause = cause
        super().__init__(f"{stage}: {cause}")


class UpgradedConnection:
    """A yamux session over a Noise channel, as a `p2p.connection.MuxedConnection`.

    The stream and lifecycle methods are the session's own bound methods (no wrapper call on the
    per-stream path). `session`, `secure` and `early_muxer` are for tests and diagnostics: the
    Host does not use them.
    """

    __slots__ = ("session", "secure", "early_muxer", "local_peer", "remote_peer",
                 "remote_public_key", "direction", "local_addr", "remote_addr", "open_stream",
                 "set_stream_handler", "run", "close")

    transport = "tcp"
    #: yamux's initial stream window (256 KiB): a new stream sends that much without waiting
    initial_send_window = INITIAL_STREAM_WINDOW

    def __init__(self, session: YamuxSession, secure: NoiseStream, early_muxer: bool,
                 direction: str, local_addr: Multiaddr, remote_addr: Multiaddr) -> None:
        self.session = session
        self.secure = secure
        self.early_muxer = early_muxer
        self.local_peer: PeerId = secure.local_peer
        self.remote_peer: PeerId = secure.remote_peer
        self.remote_public_key: PublicKey = secure.remote_public_key
        self.direction = direction
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self.open_stream = session.open_stream
        self.set_stream_handler = session.set_stream_handler
        self.run = session.run
        self.close = session.close

    @property
    def is_closed(self) -> bool:
        return self.session.is_closed

    @property
    def error(self) -> BaseException | None:
        """Why the connection ended (None: a clean close or still running)."""
        return self.session.error

    def __repr__(self) -> str:
        return f"<UpgradedConnection {self.direction} {self.remote_peer} {self.remote_addr}>"


_T = TypeVar("_T")


async def _stage(stage: str, coro: Awaitable[_T]) -> _T:
    try:
        return await coro
    except P2PError as exc:
        raise UpgradeError(stage, exc) from exc


async def upgrade_outbound(
    raw: ByteStream, identity: PrivateKey, expected_peer: PeerId | None, config: HostConfig,
    local_addr: Multiaddr, remote_addr: Multiaddr, trace: ConnTrace | None = None,
) -> UpgradedConnection:
    raw_buffered = BufferedStream(raw if trace is None else trace.wrap(raw))
    muxers = (YAMUX,) if config.early_muxer_negotiation else ()
    hs = new_handshake(identity, initiator=True, expected_peer=expected_peer, muxers=muxers,
                       trace=trace, proposed=True)
    # As go-multistream's lazy client: the proposal and Noise's first message leave in one write
    # (one round trip less). A listener reads the proposal as one length-prefixed message (go
    # reads exactly its bytes), so the Noise message waits for its Noise handshake; a listener
    # that refuses /noise gets no other proposal from us anyway.
    await send_now(raw_buffered, _NOISE_HELLO + hs.data_to_send())
    await _stage("security negotiation",
                 read_lazy_replies(raw_buffered.receive, raw_buffered.unread, NOISE))
    secure = await _stage("noise handshake", finish_handshake(raw_buffered, hs))
    early = secure.early_muxer == YAMUX
    if not early:
        buffered = BufferedStream(secure)
        await _stage("muxer negotiation", select_protocol(buffered, [YAMUX],
                                                          timeout=config.negotiation_timeout))
        secure.unread(buffered.take_buffered())  # yamux runs on the Noise stream itself
    session = YamuxSession(secure, is_client=True, config=config.yamux)
    return UpgradedConnection(session, secure, early, "outbound", local_addr, remote_addr)


async def upgrade_inbound(raw: ByteStream, identity: PrivateKey, config: HostConfig,
                          local_addr: Multiaddr, remote_addr: Multiaddr,
                          trace: ConnTrace | None = None, *,
                          progress: Callable[[], None] | None = None) -> UpgradedConnection:
    """`progress` is called once the dialer has negotiated the security protocol (admission
    evicts handshakes that got that far last)."""
    raw_buffered = BufferedStream(raw if trace is None else trace.wrap(raw))
    t = config.negotiation_timeout
    try:
        first = await raw_buffered.receive(_FIRST_READ)
    except anyio.EndOfStream:
        raise UpgradeError("security negotiation",
                           UnexpectedEOF("stream ended during protocol negotiation")) from None
    quick = quick_listen(first, _is_noise)
    reply = b""
    if quick is None:  # anything but the header and /noise at once: the whole machine
        raw_buffered.unread(first)
        await _stage(
            "security negotiation",
            handle_protocol(raw_buffered, _NOISE_ONLY, timeout=t,
                            max_na_rounds=config.max_negotiation_rounds),
        )
    else:
        _, reply, leftover = quick
        raw_buffered.unread(leftover)
    if progress is not None:
        progress()
    muxers = (YAMUX,) if config.early_muxer_negotiation else ()
    hs = new_handshake(identity, initiator=False, muxers=muxers, trace=trace,
                       proposed=bool(reply))
    if reply:
        # A lazy dialer (ours) sent Noise's first message behind its proposal: our reply and
        # Noise's second message leave in one write. From a dialer that waits for the reply
        # (go), the reply goes alone.
        ready = raw_buffered.take_buffered()
        if ready:
            try:
                hs.receive_data(ready)  # a first message cannot end the handshake
            except P2PError as exc:
                raise UpgradeError("noise handshake", exc) from exc
        await send_now(raw_buffered, reply + hs.data_to_send())
    secure = await _stage("noise handshake", finish_handshake(raw_buffered, hs))
    early = secure.early_muxer == YAMUX
    if not early:
        buffered = BufferedStream(secure)
        await _stage("muxer negotiation", handle_protocol(buffered, [YAMUX], timeout=t))
        secure.unread(buffered.take_buffered())  # yamux runs on the Noise stream itself
    session = YamuxSession(secure, is_client=False, config=config.yamux)
    return UpgradedConnection(session, secure, early, "inbound", local_addr, remote_addr)

