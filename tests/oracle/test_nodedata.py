"""NodeData / NodeDataPage as masa's Go code writes and reads them (masa-oracle pkg/pubsub/node_data.go
NodeData, node/oracle_node_listener.go NodeDataPage).

The full-record vectors are the bytes masa's own types produce (its getNodeData body and a tracker
copy, with a real peer ID and eth address); tests/interop/test_membership_go.py
also compares our encoding with the Go test peer's json.Marshal byte for byte.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.gotime import ZERO_TIME, GoTime, GoTimeError
from oracle.nodedata import NodeData, NodeDataError, NodeDataPage, pretty_duration
from p2p.errors import RemoteProtocolError

PID = "16Uiu2HAmUDQndrYJCSLz2PfnwpKZxhbtQGtCgoHdmrrUcJHSSWKE"
PID2 = "16Uiu2HAm2E77hejXzQGit9gP2H2Y8JSiGscQ6sUdwzSUt2GQ6cTx"

# masa's getNodeData body, as it pushes it to its bootnodes (node/oracle_node.go getNodeData).
FULL = (
    b'{"multiaddrs":["/ip4/127.0.0.1/udp/4001/quic-v1","/ip4/192.168.1.5/udp/4001/quic-v1"],'
    b'"multiaddrsString":" /ip4/127.0.0.1/udp/4001/quic-v1 /ip4/192.168.1.5/udp/4001/quic-v1",'
    b'"peerId":"' + PID.encode() + b'","lastUpdated":1795939526,'
    b'"ethAddress":"0xAbC0000000000000000000000000000000000001","isActive":true,"isStaked":true,'
    b'"isValidator":false,"isTwitterScraper":false,"isWebScraper":true,"version":"v0.8.4",'
    b'"workerTimeout":"0001-01-01T00:00:00Z","returnedTweets":0,'
    b'"lastReturnedTweet":"0001-01-01T00:00:00Z","tweetTimeout":false,"tweetTimeouts":0,'
    b'"lastTweetTimeout":"0001-01-01T00:00:00Z","lastNotFoundTime":"0001-01-01T00:00:00Z",'
    b'"notFoundCount":0}'
)

# A zero NodeData with only the peer ID: what every non-omitempty field looks like at zero.
MINIMAL = (
    b'{"peerId":"' + PID.encode() + b'","isActive":false,"isStaked":false,"isValidator":false,'
    b'"isTwitterScraper":false,"isWebScraper":false,"version":"",'
    b'"workerTimeout":"0001-01-01T00:00:00Z","returnedTweets":0,'
    b'"lastReturnedTweet":"0001-01-01T00:00:00Z","tweetTimeout":false,"tweetTimeouts":0,'
    b'"lastTweetTimeout":"0001-01-01T00:00:00Z","lastNotFoundTime":"0001-01-01T00:00:00Z",'
    b'"notFoundCount":0}'
)

# A tracker copy with every omitempty field set (as in a nodeDataSync line, made complete).
TRACKER_COPY = (
    b'{"multiaddrs":["/ip4/127.0.0.1/tcp/4001"],"multiaddrsString":" /ip4/127.0.0.1/tcp/4001",'
    b'"peerId":"' + PID2.encode() + b'","firstJoined":1795935834,"lastJoined":1795935834,'
    b'"lastUpdated":1795939534,"uptime":3700705170029,"uptimeStr":"1 hours 2 minutes",'
    b'"accumulatedUptime":3700705170539,"accumulatedUptimeStr":"1 hours 2 minutes",'
    b'"ethAddress":"0x01","activity":1,"isActive":true,"isStaked":true,"isValidator":false,'
    b'"isTwitterScraper":true,"isWebScraper":false,"records":{"a":[1,"\\u003c"]},"version":"v0.8.4",'
    b'"workerTimeout":"2026-11-29T08:05:26.878244335Z","returnedTweets":7,'
    b'"lastReturnedTweet":"2026-11-29T10:05:26.5+02:00","tweetTimeout":true,"tweetTimeouts":2,'
    b'"lastTweetTimeout":"2026-11-29T03:05:26-05:00","lastNotFoundTime":"0001-01-01T00:00:00Z",'
    b'"notFoundCount":3}'
)


def test_full_record_known_answer() -> None:
    data = NodeData.from_json(FULL)
    assert data.peer_id == PID
    assert data.multiaddrs == ("/ip4/127.0.0.1/udp/4001/quic-v1", "/ip4/192.168.1.5/udp/4001/quic-v1")
    assert data.multiaddrs_string == NodeData.join_multiaddrs(data.multiaddrs)
    assert (data.is_staked, data.is_web_scraper, data.is_twitter_scraper) == (True, True, False)
    assert data.last_updated == 1795939526 and data.first_joined == 0
    assert data.worker_timeout == ZERO_TIME and data.worker_timeout.is_zero
    assert data.to_go_json() == FULL


def test_minimal_record_known_answer() -> None:
    data = NodeData(peer_id=PID)
    assert data.to_go_json() == MINIMAL
    assert NodeData.from_json(MINIMAL) == data
    # the minimal body masa accepts on oracle_protocol
    short = NodeData.from_json(b'{"peerId":"' + PID.encode() + b'","isStaked":true,"isWebScraper":true}')
    assert short == NodeData(peer_id=PID, is_staked=True, is_web_scraper=True)


def test_every_field_round_trips_byte_for_byte() -> None:
    data = NodeData.from_json(TRACKER_COPY)
    assert data.uptime == 3700705170029 and data.activity == 1 and data.records == {"a": [1, "<"]}
    assert str(data.last_returned_tweet) == "2026-11-29T10:05:26.5+02:00"
    assert data.last_returned_tweet.unix_ns() == data.worker_timeout.unix_ns() - 378244335
    assert data.to_go_json() == TRACKER_COPY


def test_decoding_is_lenient_as_go() -> None:
    body = (b'{"PEERID":"' + PID.encode() + b'","isstaked":true,"unknown":{"x":[1]},'
            b'"lastLeftUnix":5,"selfIdentified":true,"isWebScraper":null,"isWebScraper":true,'
            b'"workerTimeout":null,"records":null,"multiaddrs":null}')
    data = NodeData.from_json(body)
    assert data == NodeData(peer_id=PID, is_staked=True, is_web_scraper=True)
    assert data.last_left == 0  # tag "-": never read
    # peer IDs in CID form are accepted and written back in base58, as Go does
    from p2p.identity import PeerId
    cid = PeerId.from_string(PID).to_cid()
    assert NodeData.from_json(b'{"peerId":"' + cid.encode() + b'"}').peer_id == PID
    # a missing peerId leaves it empty (masa's oracle handler then rejects it as not the sender)
    assert NodeData.from_json(b'{"isStaked":true}').peer_id == ""
    assert NodeData.from_json(b"null") == NodeData()


@pytest.mark.parametrize(
    "body",
    [
        b'{"peerId":""}',
        b'{"peerId":null}',
        b'{"peerId":"not-a-peer-id"}',
        b'{"peerId":12}',
        b'{"peerId":"%s","isStaked":"yes"}',
        b'{"peerId":"%s","uptime":"1h"}',
        b'{"peerId":"%s","uptime":1.5}',
        b'{"peerId":"%s","lastUpdated":1e3}',
        b'{"peerId":"%s","lastUpdated":9223372036854775808}',
        b'{"peerId":"%s","multiaddrs":["/ip4/1.2.3"]}',
        b'{"peerId":"%s","multiaddrs":[""]}',
        b'{"peerId":"%s","multiaddrs":"/ip4/1.2.3.4/tcp/1"}',
        b'{"peerId":"%s","multiaddrs":[7]}',
        b'{"peerId":"%s","workerTimeout":""}',
        b'{"peerId":"%s","workerTimeout":"2026-11-29 08:05:26Z"}',
        b'{"peerId":"%s","workerTimeout":"2026-02-30T08:05:26Z"}',
        b'{"peerId":"%s","workerTimeout":"2026-11-29T24:05:26Z"}',
        b'{"peerId":"%s","workerTimeout":"2026-11-29T08:05:26+24:00"}',
        b'{"peerId":"%s","workerTimeout":"2026-11-29t08:05:26Z"}',
        b'{"peerId":"%s","workerTimeout":0}',
        b'{"peerId":"%s","version":1}',
        b"[]",
        b'"x"',
        b'{"peerId":"%s"',
        b"",
        b'{"peerId":"%s","isStaked":tru}',
    ],
)
def test_what_go_refuses_is_a_typed_error(body: bytes) -> None:
    if b"%s" in body:
        body = body.replace(b"%s", PID.encode())
    with pytest.raises(NodeDataError) as info:
        NodeData.from_json(body)
    assert isinstance(info.value, RemoteProtocolError)


def test_times() -> None:
    assert str(GoTime.parse("2026-11-29T08:05:26.878244335Z")) == "2026-11-29T08:05:26.878244335Z"
    assert str(GoTime.parse("2026-11-29T08:05:26.100000000Z")) == "2026-11-29T08:05:26.1Z"
    assert str(GoTime.parse("2026-11-29T08:05:26+00:00")) == "2026-11-29T08:05:26Z"  # Go: Z at offset 0
    assert str(GoTime.parse("2026-11-29T08:05:26.1234567891234Z")) == "2026-11-29T08:05:26.123456789Z"
    assert GoTime.parse("0001-01-01T01:00:00+01:00").is_zero
    assert str(GoTime.from_unix_ns(1_795_939_526_878_244_335)) == "2026-11-29T08:05:26.878244335Z"
    assert str(GoTime.from_unix_ns(1_795_939_526_000_000_000, 3600)) == "2026-11-29T09:05:26+01:00"
    assert GoTime.parse("0000-02-29T00:00:00Z").year == 0  # Go accepts year 0 (a leap year)
    with pytest.raises(GoTimeError):
        GoTime.parse("2026-11-29T08:05:26.Z")


def test_pretty_duration() -> None:
    assert pretty_duration(0) == "0 minutes"
    assert pretty_duration(89 * 10**9) == "1 minutes"
    assert pretty_duration(3700705170029) == "1 hours 2 minutes"
    assert pretty_duration((2 * 86400 + 3 * 3600 + 4 * 60) * 10**9) == "2 days 3 hours 4 minutes"


def test_pages() -> None:
    entries = [NodeData(peer_id=PID, last_updated=i) for i in range(30)]
    pages = NodeDataPage.paginate(entries)
    assert [(p.page_number, p.total_pages, p.total_records, len(p.data)) for p in pages] == [
        (0, 2, 30, 25), (1, 2, 30, 5)]
    line = pages[1].to_go_json()
    assert line.startswith(b'{"data":[{"peerId":"' + PID.encode() + b'","lastUpdated":25,')
    assert line.endswith(b'],"pageNumber":1,"totalPages":2,"totalRecords":30}')
    assert NodeDataPage.from_json(line) == pages[1]
    assert NodeDataPage.paginate([]) == []
    assert NodeDataPage().to_go_json() == b'{"data":[],"pageNumber":0,"totalPages":0,"totalRecords":0}'
    for bad in (b'{"data":{}}', b'{"data":[1]}', b'{"pageNumber":"1"}', b"[1]", b'{"data":[{"peerId":""}]}'):
        with pytest.raises(NodeDataError):
            NodeDataPage.from_json(bad)


_text = st.text(max_size=20)
_time = st.builds(GoTime.from_unix_ns, st.integers(-62135596800 * 10**9 + 86400 * 10**9, 253402300799 * 10**9 - 86400 * 10**9),
                  st.sampled_from([0, 3600, -18000, 19800]))


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        NodeData,
        multiaddrs=st.lists(st.sampled_from(["/ip4/1.2.3.4/tcp/1", "/ip6/::1/udp/2/quic-v1"]), max_size=3).map(tuple),
        multiaddrs_string=_text, peer_id=st.just(PID), first_joined=st.integers(0, 2**40),
        uptime=st.integers(-(2**63), 2**63 - 1), eth_address=_text, activity=st.integers(0, 1),
        is_active=st.booleans(), is_staked=st.booleans(), is_web_scraper=st.booleans(),
        records=st.none() | st.integers() | st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
        version=_text, worker_timeout=_time, last_returned_tweet=_time, not_found_count=st.integers(0, 9),
    )
)
def test_round_trip_property(data: NodeData) -> None:
    body = data.to_go_json()
    again = NodeData.from_json(body)
    assert again.to_go_json() == body
