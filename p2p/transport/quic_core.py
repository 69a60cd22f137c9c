"""aioquic's sans-IO QuicConnection with the hooks libp2p needs and aioquic does not offer.

aioquic (1.x) does QUIC v1 and TLS 1.3; libp2p needs nine things it has no public option for, so
`Libp2pQuicConnection` subclasses it and overrides the smallest private methods that do each:

1. Certificate verification *inside* the handshake. aioquic verifies nothing itself when
   `verify_mode=CERT_NONE` and has no callback. The TLS context's `_set_peer_certificate` (called
   for the peer's Certificate message, on both sides) additionally runs the libp2p checks
   (`p2p.security.tls_cert.verify_certificate_chain`); a failure aborts the handshake with a
   bad_certificate alert (CRYPTO_ERROR 0x12a), before our Finished or any stream data, and keeps
   the typed error for the dialler.
2. Mutual authentication. A server only asks for a client certificate through the test-only flag
   `_request_client_certificate`, and then accepts an empty Certificate: the flag is set, and
   finishing a handshake without a peer certificate raises certificate_required (116).
3. Receive flow control credited on consumption, capped (`p2p.transport.quic_flow`), instead of
   aioquic's credit-on-arrival doubling without bound: `_write_stream_limits` and
   `_write_connection_limits` advertise what the `ReceiveWindow`s say.
4. Go's stream-count limits: 256 concurrent incoming bidirectional streams, 5 unidirectional.
5. Pacing bursts sized to what an event loop can time (`p2p.transport.quic_pacing`): aioquic's
   pacer sends 16 datagrams, then asks for a sub-millisecond sleep that epoll rounds up to 1 ms.
6. Stateless resets (RFC 9000 §10.3), which aioquic neither detects nor acts on: a peer that
   lost our connection's state (a restarted go node: its reset key derives from its identity
   key) answers our packets with one; `is_stateless_reset` checks a datagram against the tokens
   the peer gave us and `end_by_stateless_reset` ends the connection at once, sending nothing.
   quic-go answers only packets of more than 42 bytes, so our keep-alive PING (`send_ping`,
   25 bytes bare) is padded past that in `_write_ping_frame`: an idle connection to a restarted
   peer ends at the next keep-alive instead of the idle timeout.
7. Larger datagrams where the path is known to carry them (`set_datagram_size`): aioquic sends
   1200-byte datagrams for a connection's whole life (no path MTU discovery), and its per-packet
   work is Python, so bytes per datagram set the cost per byte. The peer's max_udp_payload_size
   transport parameter (which aioquic checks but does not keep) bounds it: quic-go's is 1452.
   aioquic writes every STREAM frame's length in 2 bytes, which caps a packet's frame at 16383
   bytes; `_write_stream_frame` writes a longer one with a 4-byte length (packets up to 16 KiB,
   every one towards go, are written by aioquic's own method, byte for byte as before).
8. ACKs ride on the application's data (`send_stream_data`): aioquic writes an ACK only once its
   1 ms ack delay has passed, so an immediate answer left without it and an ACK-only datagram
   followed a millisecond later, from a timer (two datagrams and a wake-up per request and side
   instead of one). quic-go bundles any pending ACK into every packet it sends; so do we.
9. A send buffer that keeps what the application wrote (`p2p.transport.quic_send.PieceSender`)
   for every bidirectional stream, swapped in as aioquic creates the stream
   (`_get_or_create_stream`, `send_stream_data`): aioquic's copies each write into one
   bytearray and reallocates it as ACKs cut its front.

The TLS context is aioquic's own object with its class swapped for a subclass that only overrides
methods (no new slots), right after aioquic creates it in `_initialize`. So is the header
protection of each key aioquic installs from TLS (`_update_traffic_key`): `_LeanHeaderProtection`
masks the same header bytes without aioquic's copies of the whole packet (three per packet of up
to 64 KiB). Keys of a later key phase keep aioquic's own class (same bytes, more copies).
"""

from __future__ import annotations

import hmac
import logging
import ssl
from typing import Any

from aioquic import tls
from aioquic._crypto import (
    PACKET_NUMBER_LENGTH_MAX,
    SAMPLE_LENGTH,
    CryptoError,
    HeaderProtection,
)
from aioquic.buffer import Buffer  # type: ignore[attr-defined]  # re-exported from aioquic._buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.congestion.base import K_INITIAL_WINDOW
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.buffer import size_uint_var
from aioquic.quic.packet import QuicFrameType, QuicProtocolVersion, pull_quic_transport_parameters
from aioquic.quic.packet_builder import QuicPacketBuilderStop

from p2p.identity import PeerId
from p2p.security.tls_cert import TlsIdentity, VerifiedPeer, verify_certificate_chain
from p2p.transport.quic_flow import ReceiveWindow
from p2p.transport.quic_pacing import GranularPacer
from p2p.transport.quic_send import adopt

# RFC 9000 §10.3: a stateless reset is at least 21 bytes: 5 unpredictable, then the 16-byte token.
_MIN_STATELESS_RESET = 21
# PADDING after a keep-alive PING: the packet then exceeds quic-go's 42-byte floor for answering
# with a stateless reset (protocol.MinStatelessResetSize), even with go's 4-byte connection IDs.
_KEEPALIVE_PADDING = 24

__all__ = ["ALPN", "MAX_DATAGRAM_SIZE", "Libp2pQuicConnection", "QuicLimits", "initial_decrypts",
           "make_configuration"]

ALPN = "libp2p"

# aioquic logs every connection error a remote peer causes at WARNING on its "quic" logger, so any
# peer could fill our logs; the driver reports them (typed) at debug level instead. Left alone
# when the application set a level of its own.
if logging.getLogger("quic").level == logging.NOTSET:
    logging.getLogger("quic").setLevel(logging.ERROR)


class QuicLimits:
    """go-libp2p v0.36.3's QUIC settings (p2p/transport/quicreuse/config.go, quic-go defaults)."""

    idle_timeout = 30.0
    handshake_idle_timeout = 5.0
    keepalive_interval = 15.0
    max_incoming_streams = 256
    max_incoming_uni_streams = 5
    stream_window = 512 * 1024
    max_stream_window = 10 * 1024 * 1024
    connection_window = 768 * 1024  # 1.5 x the stream window
    max_connection_window = 15 * 1024 * 1024


#: What a peer that does not say otherwise accepts (RFC 9000 section 18.2, max_udp_payload_size).
DEFAULT_MAX_UDP_PAYLOAD = 65527
#: The largest datagram we send: the largest UDP payload IPv4 carries (65535 - 20 - 8). aioquic
#: alone could fill no more than 16 KiB: it writes a STREAM frame's length as a 2-byte varint
#: (< 16384); `_write_stream_frame` writes longer frames with a 4-byte one.
MAX_DATAGRAM_SIZE = 65507
#: The longest frame a 2-byte varint length holds.
_SHORT_FRAME = 0x3FFF
#: Room a packet still has when no writer that sizes its frame to the room (STREAM, CRYPTO) was
#: cut short by it: such a writer leaves less than its frame's overhead (at most 3 + 8 + 8 bytes).
_ROOM_LEFT_WHEN_DONE = 64


#: The key exchange groups a dialler offers, with a key share for each (see `_initialize`).
CLIENT_GROUPS = (tls.Group.X25519, tls.Group.SECP256R1)


def make_configuration(tls_identity: TlsIdentity, *, is_client: bool,
                       idle_timeout: float = QuicLimits.idle_timeout) -> QuicConfiguration:
    """A QUIC v1 configuration with ALPN "libp2p", our certificate and no CA checks (ours run in
    the handshake instead), go's initial windows, no session tickets."""
    return QuicConfiguration(
        alpn_protocols=[ALPN],
        is_client=is_client,
        idle_timeout=idle_timeout,
        certificate=tls_identity.certificate,
        private_key=tls_identity.private_key,
        verify_mode=ssl.CERT_NONE,
        supported_versions=[QuicProtocolVersion.VERSION_1],
        max_stream_data=QuicLimits.stream_window,
        max_data=QuicLimits.connection_window,
        max_datagram_frame_size=65536,  # go enables datagrams (unused): advertise the same
    )


def initial_decrypts(data: bytes, cid_length: int) -> bool:
    """Whether the first packet of a client's first datagram is an Initial that decrypts (its
    keys derive from the connection ID it names, RFC 9001 5.2). A server checks this before
    admission, so a datagram of noise can neither take nor evict a handshake slot; it costs a
    few HKDF expansions and one AES-GCM open, no TLS."""
    from aioquic.buffer import Buffer  # type: ignore[attr-defined]
    from aioquic.quic.crypto import CryptoPair
    from aioquic.quic.packet import QuicPacketType, pull_quic_header

    buf = Buffer(data=data)
    try:
        header = pull_quic_header(buf, host_cid_length=cid_length)
    except ValueError:
        return False
    if header.packet_type != QuicPacketType.INITIAL or header.version is None:
        return False
    crypto = CryptoPair()
    crypto.setup_initial(header.destination_cid, is_client=False, version=header.version)
    try:
        crypto.decrypt_packet(data[:header.packet_length], buf.tell(), 0)
    except (CryptoError, ValueError):
        return False
    return True


class _LeanHeaderProtection(HeaderProtection):
    """aioquic's header protection without copying the payload it does not change.

    aioquic's `apply` joins the header and the encrypted payload, copies that into a bytearray
    to XOR the first byte and the packet number, and copies it back to bytes; `remove` copies the
    whole packet to unmask its header. A packet of 64 KiB was copied two more times on the way
    out and once more on the way in than the XOR needs. Here only the header is copied and
    masked; the same bytes come out (the mask is aioquic's own `_mask`)."""

    def apply(self, plain_header: bytes, protected_payload: bytes) -> bytes:
        pn_length = (plain_header[0] & 0x03) + 1
        pn_offset = len(plain_header) - pn_length
        sample_offset = PACKET_NUMBER_LENGTH_MAX - pn_length
        mask = self._mask(protected_payload[sample_offset:sample_offset + SAMPLE_LENGTH])
        header = bytearray(plain_header)
        header[0] ^= mask[0] & (0x0F if header[0] & 0x80 else 0x1F)
        for i in range(pn_length):
            header[pn_offset + i] ^= mask[1 + i]
        return bytes(header) + protected_payload

    def remove(self, packet: bytes, pn_offset: int) -> tuple[bytes, int]:
        sample_offset = pn_offset + PACKET_NUMBER_LENGTH_MAX
        if sample_offset + SAMPLE_LENGTH > len(packet):
            raise CryptoError("Packet is too short to sample")
        mask = self._mask(packet[sample_offset:sample_offset + SAMPLE_LENGTH])
        header = bytearray(packet[:sample_offset])  # the header and the longest packet number
        header[0] ^= mask[0] & (0x0F if header[0] & 0x80 else 0x1F)
        pn_length = (header[0] & 0x03) + 1
        pn_truncated = 0
        for i in range(pn_length):
            header[pn_offset + i] ^= mask[1 + i]
            pn_truncated = header[pn_offset + i] | (pn_truncated << 8)
        return bytes(header[:pn_offset + pn_length]), pn_truncated


class _CertificateRequired(tls.Alert):
    description = tls.AlertDescription.certificate_required


class _Libp2pTlsContext(tls.Context):
    """aioquic's TLS context plus the libp2p certificate checks (see the module docstring)."""

    _libp2p_owner: Libp2pQuicConnection

    def _set_peer_certificate(self, certificate: tls.Certificate) -> None:
        super()._set_peer_certificate(certificate)
        owner = self._libp2p_owner
        assert self._peer_certificate is not None  # aioquic sets it before calling us
        chain = [self._peer_certificate, *self._peer_certificate_chain]
        try:
            owner.verified_peer = verify_certificate_chain(chain, expected_peer=owner.expected_peer)
        except Exception as exc:  # a typed CertificateError / PeerIdMismatch, kept for the dialler
            owner.certificate_error = exc
            raise tls.AlertBadCertificate(str(exc)) from None

    def _server_expect_finished(self) -> None:
        if self._peer_certificate is None:  # an empty client Certificate: go requires one
            self._libp2p_owner.certificate_error = _missing_certificate()
            raise _CertificateRequired("the client sent no certificate")
        super()._server_expect_finished()


def _missing_certificate() -> Exception:
    from p2p.security.tls_cert import CertificateChainError
    return CertificateChainError("the peer sent no certificate")


class Libp2pQuicConnection(QuicConnection):
    """A sans-IO QUIC connection speaking libp2p's TLS profile (see the module docstring)."""

    def __init__(self, *, configuration: QuicConfiguration, expected_peer: PeerId | None = None,
                 **kwargs: Any) -> None:
        super().__init__(configuration=configuration, **kwargs)
        self.expected_peer = expected_peer
        self.verified_peer: VerifiedPeer | None = None
        self.certificate_error: Exception | None = None
        self._local_max_streams_bidi.value = QuicLimits.max_incoming_streams
        self._local_max_streams_uni.value = QuicLimits.max_incoming_uni_streams
        self.stream_windows: dict[int, ReceiveWindow] = {}
        self.connection_window = ReceiveWindow(QuicLimits.connection_window,
                                               QuicLimits.max_connection_window)
        self.clock_now = 0.0  # the driver's clock at its last call (the limit writers need one)
        self._loss._pacer = GranularPacer(max_datagram_size=self._max_datagram_size)
        self._ack_with_data = False  # stream data was queued: send a pending ACK with it
        #: The peer's max_udp_payload_size, known from its transport parameters.
        self.peer_max_udp_payload: int | None = None
        #: A datagram size asked for before the Initial space was gone (see set_datagram_size).
        self._wanted_datagram_size: int | None = None

    # -- hooks into aioquic --------------------------------------------------------------------
    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        context = self.tls
        context.__class__ = _Libp2pTlsContext
        context._libp2p_owner = self  # type: ignore[attr-defined]
        if not self._is_client:
            context._request_client_certificate = True
        else:
            # aioquic's client makes a key share for every group it supports (P-256, P-384,
            # X25519, X448) and cannot answer a HelloRetryRequest, so it offers only groups it
            # sends shares for: the two every libp2p peer speaks (go's first choice, X25519,
            # then P-256) spare it a P-384 and an X448 key per dial (~1.5 ms of CPU).
            context._supported_groups = list(CLIENT_GROUPS)

    def _update_traffic_key(self, direction: tls.Direction, epoch: tls.Epoch,
                            cipher_suite: tls.CipherSuite, secret: bytes) -> None:
        super()._update_traffic_key(direction, epoch, cipher_suite, secret)
        crypto = self._cryptos[epoch]
        for context in (crypto.send, crypto.recv):
            if type(context.hp) is HeaderProtection:  # aioquic's, just made: same state, leaner
                context.hp.__class__ = _LeanHeaderProtection

    def _parse_transport_parameters(self, data: bytes, from_session_ticket: bool = False) -> None:
        super()._parse_transport_parameters(data, from_session_ticket)
        # aioquic validated and applied them (a malformed blob raised above); keep the one it drops
        params = pull_quic_transport_parameters(Buffer(data=data))
        self.peer_max_udp_payload = params.max_udp_payload_size or DEFAULT_MAX_UDP_PAYLOAD

    def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
        # aioquic calls this for every stream in every packet it builds: the common case (no
        # update due, nothing unsent) returns before any other work.
        window = self.stream_windows.get(stream.stream_id)
        if window is None or not stream.max_stream_data_local:  # discarded, or receives nothing
            return
        if window.limit - window.consumed <= window.update_below:  # window.due(), inlined
            limit = window.update(self.clock_now, self.smoothed_rtt())
            if limit is not None and limit > stream.max_stream_data_local:
                stream.max_stream_data_local = limit
                self.connection_window.ensure_window(int(window.window * 1.5), self.clock_now)
        if stream.max_stream_data_local_sent == stream.max_stream_data_local:
            return  # aioquic's writer would find nothing to send either (its doubling is hidden)
        # aioquic's own writer sends MAX_STREAM_DATA when the limit moved; its doubling rule
        # needs highest_offset * 2 > limit, which the hook below keeps from firing.
        saved = stream.receiver.highest_offset
        stream.receiver.highest_offset = 0
        try:
            super()._write_stream_limits(builder, space, stream)
        finally:
            stream.receiver.highest_offset = saved

    def _write_connection_limits(self, builder: Any, space: Any) -> None:
        max_data = self._local_max_data
        window = self.connection_window
        if window.limit - window.consumed <= window.update_below:  # window.due(), inlined
            limit = window.update(self.clock_now, self.smoothed_rtt())
            if limit is not None and limit > max_data.value:
                max_data.value = limit
        # aioquic doubles max_data when used * 2 > value: hide `used` from that rule only.
        saved = max_data.used
        max_data.used = 0
        try:
            super()._write_connection_limits(builder, space)
        finally:
            max_data.used = saved

    def _write_stream_frame(self, builder: Any, space: Any, stream: Any, max_offset: int) -> int:
        # aioquic's own method while the packet has no room for a frame longer than its 2-byte
        # length field holds (every packet of up to 16 KiB: towards go, and before the size
        # grows): the same bytes as ever. In a larger packet, the same frame with a 4-byte
        # length (RFC 9000 varints need not be minimal; only over 16383 bytes is it used).
        room = builder.remaining_flight_space
        if room <= _SHORT_FRAME + 3:
            return int(super()._write_stream_frame(builder, space, stream, max_offset))
        sender = stream.sender
        offset = sender.next_offset
        overhead = 5 + size_uint_var(stream.stream_id) + (size_uint_var(offset) if offset else 0)
        previous_highest = sender.highest_offset
        frame = sender.get_frame(room - overhead, max_offset)
        if frame is None:
            return 0
        size = len(frame.data)
        frame_type = QuicFrameType.STREAM_BASE | 2  # with a length
        if frame.offset:
            frame_type |= 4
        if frame.fin:
            frame_type |= 1
        buf = builder.start_frame(frame_type, capacity=overhead, handler=sender.on_data_delivery,
                                  handler_args=(frame.offset, frame.offset + size, frame.fin))
        buf.push_uint_var(stream.stream_id)
        if frame.offset:
            buf.push_uint_var(frame.offset)
        if size <= _SHORT_FRAME:
            buf.push_uint16(size | 0x4000)
        else:
            buf.push_uint32(size | 0x80000000)
        buf.push_bytes(frame.data)
        if self._quic_logger is not None:
            builder.quic_logger_frames.append(
                self._quic_logger.encode_stream_frame(frame, stream_id=stream.stream_id))
        return int(sender.highest_offset - previous_highest)

    def _write_application(self, builder: Any, network_path: Any, now: float) -> None:
        # aioquic builds 1-RTT packets in a loop that ends only at a packet it finds empty: after
        # a request's one packet it starts a second one and runs every frame writer again (the
        # connection's and every stream's limits, the stream queue) to find nothing to send,
        # ~70 Python calls per send. The second packet is refused at its start when it would
        # be empty (`_next_packet_empty`); otherwise aioquic's loop goes on as ever.
        if not self.LEAN_PACKET_LOOP:
            super()._write_application(builder, network_path, now)
            return
        start_packet = builder.start_packet
        started = False

        def start_packet_unless_empty(packet_type: Any, crypto: Any) -> None:
            nonlocal started
            if started and self._next_packet_empty(builder):
                raise QuicPacketBuilderStop  # what aioquic's loop stops on when a packet is full
            started = True
            start_packet(packet_type, crypto)

        builder.start_packet = start_packet_unless_empty
        try:
            super()._write_application(builder, network_path, now)
        finally:
            del builder.start_packet

    #: False: aioquic's own packet loop, unchanged (tests compare both).
    LEAN_PACKET_LOOP = True

    def _next_packet_empty(self, builder: Any) -> bool:
        """Whether aioquic's next 1-RTT packet, started right after one it just wrote, would
        carry nothing. Every frame writer ran for that packet: what it had either went in,
        or raised QuicPacketBuilderStop out of the whole loop (a frame that did not fit), except
        the writers that size their frame to the room left (STREAM and CRYPTO data) and
        DATAGRAM frames (a full packet moves them on). So the next packet has something only
        when the last one ran out of room, a datagram waits, a stream's window growth made the
        connection's credit due after its MAX_DATA was written (`_write_stream_limits`), or
        the stream loop discarded finished streams whose slots aioquic announces (MAX_STREAMS)
        in the next packet."""
        if builder.remaining_flight_space < _ROOM_LEFT_WHEN_DONE or self._datagrams_pending:
            return False
        window = self.connection_window
        if window.limit - window.consumed <= window.update_below:  # window.due(), inlined
            return False
        for limit in (self._local_max_streams_bidi, self._local_max_streams_uni):
            # aioquic's _write_connection_limits, for the stream limits: due unless batched
            if limit.value != limit.sent and limit.sent - limit.used < limit.value - limit.sent:
                return False
        return True

    def _get_or_create_stream(self, frame_type: int, stream_id: int) -> Any:
        # A received frame's stream that aioquic holds is that stream (aioquic's own checks
        # first ask whether it was discarded, which a held stream never is); any other takes
        # aioquic's way: created, refused as discarded, or past the stream limit.
        stream = self._streams.get(stream_id)
        if stream is not None:
            return stream
        # the peer's streams aioquic opens now: this one and the lower ones it had not opened
        first = self._local_max_streams_bidi.used * 4 + (stream_id & 3)
        stream = super()._get_or_create_stream(frame_type, stream_id)
        if not stream_id & 2:  # bidirectional: they send through PieceSender (quic_send)
            streams = self._streams
            for sid in range(first, stream_id + 4, 4):
                adopt(streams[sid].sender)
        return stream

    def _assert_stream_can_receive(self, frame_type: int, stream_id: int) -> None:
        if stream_id & 2:  # unidirectional: aioquic's check (ours may be send-only)
            super()._assert_stream_can_receive(frame_type, stream_id)
        # a bidirectional stream can always receive

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        # A bidirectional stream aioquic holds can always be written (its checks, for a stream
        # in `_streams`: sendable, not discarded, found), so the write goes to its sender
        # without them (~8 Python calls; a request's stream is written three times per side).
        # Any other (new, discarded, unidirectional) takes aioquic's way and its errors.
        stream = self._streams.get(stream_id)
        if stream is not None and not stream_id & 2:
            stream.sender.write(data, end_stream=end_stream)
        else:
            super().send_stream_data(stream_id, data, end_stream)
            if not stream_id & 2:  # a new stream of ours (aioquic made it: its checks passed)
                adopt(self._streams[stream_id].sender)
        self._ack_with_data = True

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, NetworkAddress]]:
        if self._ack_with_data:
            self._ack_with_data = False
            space = self._spaces.get(tls.Epoch.ONE_RTT) if self._spaces else None
            if space is not None and space.ack_at is not None and space.ack_at > now:
                space.ack_at = now  # due now: the packet carrying the data carries the ACK
        datagrams = super().datagrams_to_send(now)
        if self._wanted_datagram_size is not None:  # the client drops its Initial space in there
            self.set_datagram_size(self._wanted_datagram_size)
        return datagrams

    def _initial_space_discarded(self) -> bool:
        space = self._spaces.get(tls.Epoch.INITIAL) if self._spaces else None
        return space is None or space.discarded

    # -- what the driver uses ------------------------------------------------------------------
    @property
    def datagram_size(self) -> int:
        return self._max_datagram_size

    def set_datagram_size(self, size: int) -> int:
        """Send datagrams of up to `size` bytes (UDP payload) from now on, as far as the peer's
        max_udp_payload_size allows and never below QUIC's 1200; returns the size in use.
        Only after the handshake (the peer's limit is known then): the caller knows the path
        carries `size` (a loopback peer). The congestion controller and the pacer count in
        datagrams of this size too; in slow start the window is at least the initial 10 of them
        (RFC 9002's initial window for a connection starting at this size)."""
        if not self._handshake_complete or self.peer_max_udp_payload is None:
            return self._max_datagram_size
        if not self._initial_space_discarded():
            # A datagram holding an Initial packet is padded to the whole datagram size (the
            # client's last flight: its Initial ACK beside the Handshake Finished). At 16 KiB the
            # peer would walk ~15 KB of PADDING frames in Python (aioquic skips them a byte at a
            # time: ~0.8 ms a handshake), so the size waits until no Initial packet can be sent.
            self._wanted_datagram_size = size
            return self._max_datagram_size
        self._wanted_datagram_size = None
        size = max(self._configuration.max_datagram_size,
                   min(size, self.peer_max_udp_payload, MAX_DATAGRAM_SIZE))
        self._max_datagram_size = size
        cc = self._loss._cc
        if cc.ssthresh is None:  # still in slow start: at least the initial window in new datagrams
            cc.congestion_window = max(cc.congestion_window, K_INITIAL_WINDOW * size)
        for part in (cc, self._loss._pacer):
            if hasattr(part, "_max_datagram_size"):
                part._max_datagram_size = size
        return size

    def smoothed_rtt(self) -> float | None:
        rtt = getattr(self._loss, "_rtt_smoothed", 0.0)
        return rtt or None

    def window_for(self, stream_id: int) -> ReceiveWindow:
        window = self.stream_windows.get(stream_id)
        if window is None:
            window = self.stream_windows[stream_id] = ReceiveWindow(
                QuicLimits.stream_window, QuicLimits.max_stream_window)
        return window

    def consumed(self, stream_id: int, n: int, now: float) -> None:
        """The application read (or dropped) `n` bytes of `stream_id`: credit may be due."""
        self.clock_now = now
        window = self.stream_windows.get(stream_id)
        if window is not None:
            window.add_consumed(n, now)
        self.connection_window.add_consumed(n, now)

    def discard_stream(self, stream_id: int, now: float) -> None:
        """Nobody will read `stream_id` any more (reset, or closed by us): whatever it received
        beyond what was read is credited to the connection now, and so is whatever arrives
        later (`discard_data`)."""
        window = self.stream_windows.pop(stream_id, None)
        stream = self._streams.get(stream_id)
        if window is not None and stream is not None:
            unread = stream.receiver.highest_offset - window.consumed
            if unread > 0:
                self.connection_window.add_consumed(unread, now)

    def discard_data(self, n: int, now: float) -> None:
        """Bytes that arrived for a discarded stream: the connection's credit only."""
        self.connection_window.add_consumed(n, now)

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_complete

    @property
    def received_initial(self) -> bool:
        """Whether any Initial packet decrypted (a server drops a first datagram that did not).
        One that decrypted but was refused (no common ALPN) leaves a CONNECTION_CLOSE to send."""
        from aioquic.tls import Epoch
        space = self._spaces.get(Epoch.INITIAL) if self._spaces else None
        return (space is not None and space.largest_received_packet >= 0) or self._close_pending

    def is_stateless_reset(self, datagram: bytes) -> bool:
        """Whether `datagram` (one that matched none of our connection IDs) ends in a stateless
        reset token the peer issued for a connection ID we may be using (RFC 9000 §10.3.1)."""
        if len(datagram) < _MIN_STATELESS_RESET or datagram[0] & 0xC0 != 0x40:
            return False
        tail = datagram[-16:]
        return any(cid.stateless_reset_token and hmac.compare_digest(cid.stateless_reset_token, tail)
                   for cid in (self._peer_cid, *self._peer_cid_available))

    def end_by_stateless_reset(self) -> None:
        """The peer has no state for this connection: end it without sending anything."""
        if self.is_ended:
            return
        from aioquic.quic.events import ConnectionTerminated
        from aioquic.quic.packet import QuicErrorCode
        self._close_event = ConnectionTerminated(
            error_code=QuicErrorCode.NO_ERROR, frame_type=None, reason_phrase="stateless reset")
        self._close_end()

    def _write_ping_frame(self, builder: Any, uids: list[int] = [],  # noqa: B006 (aioquic's)
                          comment: str = "") -> None:
        super()._write_ping_frame(builder, uids, comment)
        if uids:  # a keep-alive (`send_ping`); loss probes carry no uid
            from aioquic.quic.packet import QuicFrameType
            from aioquic.quic.packet_builder import QuicPacketBuilderStop
            try:
                buf = builder.start_frame(QuicFrameType.PADDING, capacity=_KEEPALIVE_PADDING)
            except QuicPacketBuilderStop:  # no room left in this packet: it is large already
                return
            buf.push_bytes(bytes(_KEEPALIVE_PADDING - 1))

    @property
    def received_handshake(self) -> bool:
        """Whether a Handshake packet decrypted: the peer read our first flight and answered it
        from its address (an inbound handshake that made progress, for admission)."""
        from aioquic.tls import Epoch
        space = self._spaces.get(Epoch.HANDSHAKE) if self._spaces else None
        return space is not None and space.largest_received_packet >= 0

    @property
    def is_ended(self) -> bool:
        from aioquic.quic.connection import END_STATES
        return self._state in END_STATES
