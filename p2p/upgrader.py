"""Raw TCP -> secure -> muxed, as one straight line (go-libp2p's upgrader is the model).

outbound: select `/noise` -> Noise XX as initiator (peer ID checked) -> yamux (early, or
          select `/yamux/1.0.0`) -> yamux client
inbound:  answer `/noise` (`na` to anything else, e.g. go's `/tls/1.0.0` or v0.24's
          `/libp2p/simultaneous-connect`) -> Noise XX as responder -> yamux server
Each failure is wrapped in an `UpgradeError` that names its stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p.config import HostConfig
from p2p.errors import P2PError
from p2p.identity import PeerId, PrivateKey, PublicKey
from p2p.mux.yamux_session import YamuxSession
from p2p.negotiate import handle_protocol, select_protocol
from p2p.security.noise_stream import NoiseStream, secure_inbound, secure_outbound
from p2p.streams import BufferedStream, ByteStream

YAMUX = "/yamux/1.0.0"


class UpgradeError(P2PError):
    def __init__(self, stage: str, cause: BaseException) -> None:
        self.stage = stage
        self.cause = cause
        super().__init__(f"{stage}: {cause}")


@dataclass
class Upgraded:
    session: YamuxSession
    secure: NoiseStream
    remote_peer: PeerId
    remote_public_key: PublicKey
    early_muxer: bool


async def _stage(stage: str, coro):
    try:
        return await coro
    except P2PError as exc:
        raise UpgradeError(stage, exc) from exc


async def upgrade_outbound(
    raw: ByteStream, identity: PrivateKey, expected_peer: PeerId | None, config: HostConfig
) -> Upgraded:
    conn = BufferedStream(raw)
    t = config.negotiation_timeout
    await _stage("security negotiation", select_protocol(conn, ["/noise"], timeout=t))
    muxers = config.muxer_protocols if config.early_muxer_negotiation else ()
    secure = await _stage(
        "noise handshake",
        secure_outbound(
            conn, identity, expected_peer=expected_peer, muxers=muxers, timeout=config.dial_timeout
        ),
    )
    muxed: ByteStream = secure
    early = secure.early_muxer == YAMUX
    if not early:
        buffered = BufferedStream(secure)
        await _stage("muxer negotiation", select_protocol(buffered, [YAMUX], timeout=t))
        muxed = buffered
    session = YamuxSession(muxed, is_client=True, config=config.yamux)
    return Upgraded(session, secure, secure.remote_peer, secure.remote_public_key, early)


async def upgrade_inbound(raw: ByteStream, identity: PrivateKey, config: HostConfig) -> Upgraded:
    conn = BufferedStream(raw)
    t = config.negotiation_timeout
    await _stage(
        "security negotiation",
        handle_protocol(conn, ["/noise"], timeout=t, max_na_rounds=config.max_negotiation_rounds),
    )
    muxers = config.muxer_protocols if config.early_muxer_negotiation else ()
    secure = await _stage(
        "noise handshake",
        secure_inbound(conn, identity, muxers=muxers, timeout=config.inbound_upgrade_timeout),
    )
    muxed: ByteStream = secure
    early = secure.early_muxer == YAMUX
    if not early:
        buffered = BufferedStream(secure)
        await _stage("muxer negotiation", handle_protocol(buffered, [YAMUX], timeout=t))
        muxed = buffered
    session = YamuxSession(muxed, is_client=False, config=config.yamux)
    return Upgraded(session, secure, secure.remote_peer, secure.remote_public_key, early)
