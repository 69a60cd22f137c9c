"""HostConfig: validation, from_mapping (the --limits JSON), and the CLI's fd-limit lift."""

import resource

import pytest

from p2p.cli import CliError, parse_limits, raise_fd_limit
from p2p.config import HostConfig


def test_defaults_follow_go():
    c = HostConfig()
    assert (c.tcp_connect_timeout, c.dial_timeout, c.inbound_upgrade_timeout) == (5.0, 15.0, 15.0)
    assert c.negotiation_timeout == 10.0 and c.identify_timeout == 30.0
    assert c.max_identify_message == 8192 and c.max_identify_messages == 9
    assert c.yamux.initial_stream_window == 262144 and c.yamux.max_stream_window == 16 << 20


@pytest.mark.parametrize("field,value", [("dial_timeout", 0), ("max_connections", 0),
                                         ("max_inbound_streams_per_conn", 0)])
def test_invalid_values_rejected(field, value):
    with pytest.raises(ValueError):
        HostConfig(**{field: value})


def test_from_mapping_replaces_and_validates():
    c = HostConfig.from_mapping({"max_connections": 10, "negotiation_timeout": 2,
                                 "yamux": {"accept_backlog": 8}})
    assert c.max_connections == 10 and c.negotiation_timeout == 2.0
    assert c.yamux.accept_backlog == 8 and c.yamux.initial_stream_window == 262144
    assert HostConfig.from_mapping({}, base=c) == c
    for bad in ({"max_conections": 1}, {"max_connections": "10"}, {"max_connections": True},
                {"early_muxer_negotiation": 1}, {"yamux": 3}, {"yamux": {"nope": 1}},
                {"max_connections": -1},
                # removed fields are refused by name, not ignored: yamux is the only muxer
                # (early muxer negotiation offers exactly it) and Noise the only TCP security
                {"muxer_protocols": ["/mplex/6.7.0"]}, {"security_protocols": ["/noise"]}):
        with pytest.raises(ValueError):
            HostConfig.from_mapping(bad)


def test_parse_limits_json_and_file(tmp_path):
    assert parse_limits('{"max_pending_inbound": 5}').max_pending_inbound == 5
    f = tmp_path / "limits.json"
    f.write_text('{"max_connections_per_ip": 3}')
    assert parse_limits(f"@{f}").max_connections_per_ip == 3
    for bad in ("[1]", "{", '{"nope": 1}', f"@{tmp_path / 'missing.json'}"):
        with pytest.raises(CliError):
            parse_limits(bad)


def test_raise_fd_limit_fits_the_configured_connections():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        cfg = HostConfig(max_connections=2000, max_pending_inbound=100)
        got = raise_fd_limit(cfg)
        need = 2000 + 100 + 256
        assert got == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert got >= min(need, hard if hard != resource.RLIM_INFINITY else need)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_inbound_stream_cap_reaches_yamux():
    assert HostConfig().yamux.max_inbound_streams == 1024
    c = HostConfig(max_inbound_streams_per_conn=7)
    assert c.yamux.max_inbound_streams == 7
    assert HostConfig.from_mapping({"max_inbound_streams_per_conn": 9}).yamux.max_inbound_streams == 9
