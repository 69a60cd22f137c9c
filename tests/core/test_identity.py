"""Known-answer and property tests for p2p.identity (keys, signatures, peer IDs, key files).

Vectors are copied from the libp2p peer-id spec (peer-ids/peer-ids.md), go-libp2p's
core/crypto/test_data fixtures and RFC 8032; expected peer IDs are values go-libp2p computed for the
same keys. Nothing here is checked against the module's own constants.
"""

from __future__ import annotations

import ast
import os
import pathlib
import stat

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings, strategies as st

import p2p.identity as identity
from p2p import der, key_codecs
from p2p.errors import DecodeError
from p2p.identity import (
    InvalidPeerId,
    KeyDecodeError,
    KeyType,
    PeerId,
    PrivateKey,
    PublicKey,
    UnsupportedKeyType,
    load_private_key_file,
    parse_key_type,
    save_private_key_file,
)

H = bytes.fromhex

# --- libp2p/specs peer-ids.md test vectors (protobuf-encoded keys) -------------------------------
ECDSA_PRIV = H(
    "08031279307702010104203E5B1FE9712E6C314942A750BD67485DE3C1EFE85B1BFB520AE8F9AE3DFA4A4CA00A06"
    "082A8648CE3D030107A14403420004DE3D300FA36AE0E8F5D530899D83ABAB44ABF3161F162A4BC901D8E6ECDA02"
    "0E8B6D5F8DA30525E71D6851510C098E5C47C646A597FB4DCEC034E9F77C409E62"
)
ECDSA_PUB = H(
    "0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d530899d83ab"
    "ab44abf3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597fb4dcec034e9f77c"
    "409e62"
)
ED25519_PRIV = H(
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be"
    "8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
ED25519_PUB = H("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")
SECP_PRIV = H("0802122053DADF1D5A164D6B4ACDB15E24AA4C5B1D3461BDBD42ABEDB0A4404D56CED8FB")
SECP_PUB = H("08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99")
RSA_PRIV = H(
    "080012ae123082092a0201000282020100e1beab071d08200bde24eef00d049449b07770ff9910257b2d7d5dda24"
    "2ce8f0e2f12e1af4b32d9efd2c090f66b0f29986dbb645dae9880089704a94e5066d594162ae6ee8892e6ec70701"
    "db0a6c445c04778eb3de1293aa1a23c3825b85c6620a2bc3f82f9b0c309bc0ab3aeb1873282bebd3da03c33e76c2"
    "1e9beb172fd44c9e43be32e2c99827033cf8d0f0c606f4579326c930eb4e854395ad941256542c793902185153c4"
    "74bed109d6ff5141ebf9cd256cf58893a37f83729f97e7cb435ec679d2e33901d27bb35aa0d7e20561da08885ef0"
    "abbf8e2fb48d6a5487047a9ecb1ad41fa7ed84f6e3e8ecd5d98b3982d2a901b4454991766da295ab78822add5612"
    "a2df83bcee814cf50973e80d7ef38111b1bd87da2ae92438a2c8cbcc70b31ee319939a3b9c761dbc13b5c086d6b6"
    "4bf7ae7dacc14622375d92a8ff9af7eb962162bbddebf90acb32adb5e4e4029f1c96019949ecfbfeffd7ac1e3fbc"
    "c6b6168c34be3d5a2e5999fcbb39bba7adbca78eab09b9bc39f7fa4b93411f4cc175e70c0a083e96bfaefb04a958"
    "0b4753c1738a6a760ae1afd851a1a4bdad231cf56e9284d832483df215a46c1c21bdf0c6cfe951c18f1ee4078c79"
    "c13d63edb6e14feaeffabc90ad317e4875fe648101b0864097e998f0ca3025ef9638cd2b0caecd3770ab54a1d9c6"
    "ca959b0f5dcbc90caeefc4135baca6fd475224269bbe1b02030100010282020100a472ffa858efd8588ce59ee264"
    "b957452f3673acdf5631d7bfd5ba0ef59779c231b0bc838a8b14cae367b6d9ef572c03c7883b0a3c652f5c24c316"
    "b1ccfd979f13d0cd7da20c7d34d9ec32dfdc81ee7292167e706d705efde5b8f3edfcba41409e642f8897357df5d3"
    "20d21c43b33600a7ae4e505db957c1afbc189d73f0b5d972d9aaaeeb232ca20eebd5de6fe7f29d01470354413cc9"
    "a0af1154b7af7c1029adcd67c74b4798afeb69e09f2cb387305e73a1b5f450202d54f0ef096fe1bde340219a1194"
    "d1ac9026e90b366cce0c59b239d10e4888f52ca1780824d39ae01a6b9f4dd6059191a7f12b2a3d8db3c2868cd4e5"
    "a5862b8b625a4197d52c6ac77710116ebd3ced81c4d91ad5fdfbed68312ebce7eea45c1833ca3acf7da2052820ea"
    "cf5c6b07d086dabeb893391c71417fd8a4b1829ae2cf60d1749d0e25da19530d889461c21da3492a8dc6ccac7de8"
    "3ac1c2185262c7473c8cc42f547cc9864b02a8073b6aa54a037d8c0de3914784e6205e83d97918b944f11b877b12"
    "084c0dd1d36592f8a4f8b8da5bb404c3d2c079b22b6ceabfbcb637c0dbe0201f0909d533f8bf308ada47aee641a0"
    "12a494d31b54c974e58b87f140258258bb82f31692659db7aa07e17a5b2a0832c24e122d3a8babcc9ee74cbb07d3"
    "058bb85b15f6f6b2674aba9fd34367be9782d444335fbed31e3c4086c652597c27104938b47fa10282010100e9fd"
    "f843c1550070ca711cb8ff28411466198f0e212511c3186623890c0071bf6561219682fe7dbdfd81176eba7c4fab"
    "a21614a20721e0fcd63768e6d925688ecc90992059ac89256e0524de90bf3d8a052ce6a9f6adafa712f3107a016e"
    "20c80255c9e37d8206d1bc327e06e66eb24288da866b55904fd8b59e6b2ab31bc5eab47e597093c63fab7872102d"
    "57b4c589c66077f534a61f5f65127459a33c91f6db61fc431b1ae90be92b4149a3255291baf94304e3efb77b1107"
    "b5a3bda911359c40a53c347ff9100baf8f36dc5cd991066b5bdc28b39ed644f404afe9213f4d31c9d4e40f3a5f5e"
    "3c39bebeb244e84137544e1a1839c1c8aaebf0c78a7fad590282010100f6fa1f1e6b803742d5490b7441152f5009"
    "70f46feb0b73a6e4baba2aaf3c0e245ed852fc31d86a8e46eb48e90fac409989dfee45238f97e8f1f8e83a136488"
    "c1b04b8a7fb695f37b8616307ff8a8d63e8cfa0b4fb9b9167ffaebabf111aa5a4344afbabd002ae8961c38c02da7"
    "6a9149abdde93eb389eb32595c29ba30d8283a7885218a5a9d33f7f01dbdf85f3aad016c071395491338ec318d39"
    "220e1c7bd69d3d6b520a13a30d745c102b827ad9984b0dd6aed73916ffa82a06c1c111e7047dcd2668f988a0570a"
    "71474992eecf416e068f029ec323d5d635fd24694fc9bf96973c255d26c772a95bf8b7f876547a5beabf86f06cd2"
    "1b67994f944e7a5493028201010095b02fd30069e547426a8bea58e8a2816f33688dac6c6f6974415af8402244a2"
    "2133baedf34ce499d7036f3f19b38eb00897c18949b0c5a25953c71aeeccfc8f6594173157cc854bd98f16dffe8f"
    "28ca13b77eb43a2730585c49fc3f608cd811bb54b03b84bddaa8ef910988567f783012266199667a546a18fd8827"
    "1fbf63a45ae4fd4884706da8befb9117c0a4d73de5172f8640b1091ed8a4aea3ed4641463f5ff6a5e3401ad7d0c9"
    "2811f87956d1fd5f9a1d15c7f3839a08698d9f35f9d966e5000f7cb2655d7b6c4adcd8a9d950ea5f61bb7c9a33c1"
    "7508f9baa313eecfee4ae493249ebe05a5d7770bbd3551b2eeb752e3649e0636de08e3d672e66cb90282010100ad"
    "93e4c31072b063fc5ab5fe22afacece775c795d0efdf7c704cfc027bde0d626a7646fc905bb5a80117e3ca49059a"
    "f14e0160089f9190065be9bfecf12c3b2145b211c8e89e42dd91c38e9aa23ca73697063564f6f6aa6590088a7387"
    "22df056004d18d7bccac62b3bafef6172fc2a4b071ea37f31eff7a076bcab7dd144e51a9da8754219352aef2c734"
    "78971539fa41de4759285ea626fa3c72e7085be47d554d915bbb5149cb6ef835351f231043049cd941506a034bf2"
    "f8767f3e1e42ead92f91cb3d75549b57ef7d56ac39c2d80d67f6a2b4ca192974bfc5060e2dd171217971002193db"
    "a12e7e4133ab201f07500a90495a38610279b13a48d54f0c99028201003e3a1ac0c2b67d54ed5c4bbe04a7db9910"
    "3659d33a4f9d35809e1f60c282e5988dddc964527f3b05e6cc890eab3dcb571d66debf3a5527704c87264b3954d7"
    "265f4e8d2c637dd89b491b9cf23f264801f804b90454d65af0c4c830d1aef76f597ef61b26ca857ecce9cb78d4f6"
    "c2218c00d2975d46c2b013fbf59b750c3b92d8d3ed9e6d1fd0ef1ec091a5c286a3fe2dead292f40f380065731e20"
    "79ebb9f2a7ef2c415ecbb488da98f3a12609ca1b6ec8c734032c8bd513292ff842c375d4acd1b02dfb206b24cd81"
    "5f8e2f9d4af8e7dea0370b19c1b23cc531d78b40e06e1119ee2e08f6f31c6e2e8444c568d13c5d451a291ae0c9f1"
    "d4f27d23b3a00d60ad"
)
RSA_PUB = H(
    "080012a60430820222300d06092a864886f70d01010105000382020f003082020a0282020100e1beab071d08200b"
    "de24eef00d049449b07770ff9910257b2d7d5dda242ce8f0e2f12e1af4b32d9efd2c090f66b0f29986dbb645dae9"
    "880089704a94e5066d594162ae6ee8892e6ec70701db0a6c445c04778eb3de1293aa1a23c3825b85c6620a2bc3f8"
    "2f9b0c309bc0ab3aeb1873282bebd3da03c33e76c21e9beb172fd44c9e43be32e2c99827033cf8d0f0c606f45793"
    "26c930eb4e854395ad941256542c793902185153c474bed109d6ff5141ebf9cd256cf58893a37f83729f97e7cb43"
    "5ec679d2e33901d27bb35aa0d7e20561da08885ef0abbf8e2fb48d6a5487047a9ecb1ad41fa7ed84f6e3e8ecd5d9"
    "8b3982d2a901b4454991766da295ab78822add5612a2df83bcee814cf50973e80d7ef38111b1bd87da2ae92438a2"
    "c8cbcc70b31ee319939a3b9c761dbc13b5c086d6b64bf7ae7dacc14622375d92a8ff9af7eb962162bbddebf90acb"
    "32adb5e4e4029f1c96019949ecfbfeffd7ac1e3fbcc6b6168c34be3d5a2e5999fcbb39bba7adbca78eab09b9bc39"
    "f7fa4b93411f4cc175e70c0a083e96bfaefb04a9580b4753c1738a6a760ae1afd851a1a4bdad231cf56e9284d832"
    "483df215a46c1c21bdf0c6cfe951c18f1ee4078c79c13d63edb6e14feaeffabc90ad317e4875fe648101b0864097"
    "e998f0ca3025ef9638cd2b0caecd3770ab54a1d9c6ca959b0f5dcbc90caeefc4135baca6fd475224269bbe1b0203"
    "010001"
)

# (private, public, multihash hex, base58btc, CIDv1) – peer IDs as confirmed against go-libp2p.
SPEC_VECTORS = {
    "ed25519": (
        ED25519_PRIV,
        ED25519_PUB,
        "0024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
        "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6",
    ),
    "secp256k1": (
        SECP_PRIV,
        SECP_PUB,
        "002508021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99",
        "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY",
        "bafzaajiiaijcca3xo7uzjzcsyilaj6i54cj44qk7kqzpoao5rti2pjx6udtdbp6kte",
    ),
    "ecdsa": (
        ECDSA_PRIV,
        ECDSA_PUB,
        "122068362c312e155f4f7290b67f5cd094a22a0a4fbf20efd8c287934419350d36f7",
        "QmVMT29id3TUASyfZZ6k9hmNyc2nYabCo4uMSpDw4zrgDk",
        "bafzbeidigywdclqvl5hxfefwp5onbffcfife7pza57mmfb4tiqmtkdjw64",
    ),
    "rsa": (
        RSA_PRIV,
        RSA_PUB,
        "1220b6c8a8c0a3105fc27afca4fb1173791f038e4343fd56b7c67b616dbc30a04ccd",
        "QmaeANgBs1DTSxWSrPPtobgQuxW8XTfsS4ydbK4rCHzqxG",
        "bafzbeifwzcumbiyql7bhv7fe7mixg6i7aohegq75k234m63bnw6dbicmzu",
    ),
}

# --- go-libp2p core/crypto/test_data signature fixtures: message "Libp2p is the _best_!" --------
FIXTURE_MSG = b"Libp2p is the _best_!"
GO_SECP_PRIV = H("080212203141bd606a504c44f23494d8f3174ef25b1fb9b52daa07d058be83b6e046b158")
GO_SECP_PUB = H("08021221023540ad842af8a43551a94d8383a555a99226506b88f953d2e70316a3a1b3d6a2")
GO_SECP_SIG = H(
    "3044022031a7d633c2f3e45a16128d43751afaa8dc9ba24092c5f5b3cad2c8fe4cf388f2022049ea8d219f45868"
    "3d24775d543ea8fb290704347fb35493c403bc2c259b29d9e"
)
GO_ECDSA_PUB = H(
    "0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004e29a8674f3614e0ccb72406bfe2137"
    "e9f8c5f7d62d137f0a2edd233e35374777fd1f9aed4d2cfa7371caafc6ef02db83b81f77cfe1bcd8c715acf0b9a2"
    "778ea9"
)
GO_ECDSA_PRIV = H(
    "08031279307702010104201fc05449e3a3423bb8b59447a43c3e23ad4095ac4f9fbb75457acef34b68949fa00a06"
    "082a8648ce3d030107a14403420004e29a8674f3614e0ccb72406bfe2137e9f8c5f7d62d137f0a2edd233e353747"
    "77fd1f9aed4d2cfa7371caafc6ef02db83b81f77cfe1bcd8c715acf0b9a2778ea9"
)
GO_ECDSA_SIG = H(
    "3046022100846a6685b9e72b560cb2fc4a75f9cbc38a90aaeaa7f3f25ee719832db7b93a65022100cd992bb7bd2b"
    "cc28c7db04987d10adc490fe348270954f7696cb0dffff0dfc3d"
)
# RFC 8032 §7.1 TEST 1 (empty message), wrapped in libp2p protobufs.
RFC8032_SEED = H("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUB = H("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = H(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
    "6bd25bf5f0595bbe24655141438e7a100b"
)

# Group orders (SEC 2): used to build high/low-S variants independently of the module.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_int(v: int) -> bytes:
    body = v.to_bytes(v.bit_length() // 8 + 1, "big", signed=True)
    return b"\x02" + der_len(len(body)) + body


def der_seq(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return b"\x30" + der_len(len(body)) + body


def key_pb(key_type: int, data: bytes) -> bytes:
    return bytes([0x08, key_type, 0x12]) + der_len_varint(len(data)) + data


def der_len_varint(n: int) -> bytes:  # protobuf uvarint (independent of p2p.varint)
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# ================================ spec vectors ==================================================
@pytest.mark.parametrize("name", list(SPEC_VECTORS))
def test_spec_vector_private_to_public_and_peer_id(name: str) -> None:
    priv_pb, pub_pb, mh_hex, b58, cid = SPEC_VECTORS[name]
    sk = PrivateKey.from_protobuf(priv_pb)
    pk = PublicKey.from_protobuf(pub_pb)
    assert sk.public_key == pk
    assert sk.public_key.to_protobuf() == pub_pb
    assert pk.to_protobuf() == pub_pb
    assert sk.to_protobuf().hex() == priv_pb.hex().lower()  # canonical re-encoding is byte-exact
    pid = PeerId.from_public_key(pk)
    assert pid.to_bytes().hex() == mh_hex
    assert pid.to_base58() == b58 == str(pid)
    assert pid.to_cid() == cid
    assert PeerId.from_string(b58) == pid == PeerId.from_string(cid)
    assert PeerId.from_bytes(H(mh_hex)) == pid
    assert pid.matches(pk)


@pytest.mark.parametrize("name", list(SPEC_VECTORS))
def test_spec_vector_extract_public_key(name: str) -> None:
    _, pub_pb, mh_hex, _, _ = SPEC_VECTORS[name]
    extracted = PeerId.from_bytes(H(mh_hex)).extract_public_key()
    if name in ("ed25519", "secp256k1"):  # inlined (identity multihash)
        assert extracted is not None and extracted.to_protobuf() == pub_pb
    else:  # sha2-256: the key is not recoverable
        assert extracted is None


def test_spec_example_peer_id_decodes() -> None:
    pid = PeerId.from_string("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
    assert pid.to_bytes() == H(
        "0024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b"
    )
    pk = pid.extract_public_key()
    assert pk is not None and pk.key_type is KeyType.Ed25519
    assert PeerId.from_public_key(pk) == pid


def test_spec_example_sha256_id_base58_and_cid_agree() -> None:
    a = PeerId.from_string("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
    b = PeerId.from_string("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe")
    assert a == b and hash(a) == hash(b)
    assert a.to_cid() == "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"
    assert b.to_base58() == "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"


def test_masa_bootnode_id_decodes() -> None:
    pid = PeerId.from_string("16Uiu2HAm9Nkz9kEMnL1YqPTtXZHQZ1E9rhquwSqKNsUViqTojLZt")
    assert pid.to_bytes() == H(
        "00250802122102cf4488f869d0d13ef3b24ccfa0bbe49234dca9ec89ffc71a3d2db605e2723b4f"
    )
    pk = pid.extract_public_key()
    assert pk is not None and pk.key_type is KeyType.Secp256k1
    assert pk.raw() == H("02cf4488f869d0d13ef3b24ccfa0bbe49234dca9ec89ffc71a3d2db605e2723b4f")


# ================================ signature fixtures ============================================
def test_go_secp256k1_signature_reproduced_byte_exact() -> None:
    sk = PrivateKey.from_protobuf(GO_SECP_PRIV)
    assert sk.public_key.to_protobuf() == GO_SECP_PUB
    assert sk.sign(FIXTURE_MSG) == GO_SECP_SIG  # RFC 6979 + low S, DER
    pk = PublicKey.from_protobuf(GO_SECP_PUB)
    assert pk.verify(FIXTURE_MSG, GO_SECP_SIG)
    assert not pk.verify(FIXTURE_MSG + b"!", GO_SECP_SIG)


def test_go_ecdsa_high_s_signature_verifies() -> None:
    pk = PublicKey.from_protobuf(GO_ECDSA_PUB)
    r, s = int.from_bytes(GO_ECDSA_SIG[5:37], "big"), int.from_bytes(GO_ECDSA_SIG[40:], "big")
    assert s > P256_N // 2  # the fixture really is high-S
    assert pk.verify(FIXTURE_MSG, GO_ECDSA_SIG)
    assert pk.verify(FIXTURE_MSG, der_seq(der_int(r), der_int(P256_N - s)))  # low-S twin
    assert not pk.verify(b"Libp2p is the _worst_!", GO_ECDSA_SIG)
    sk = PrivateKey.from_protobuf(GO_ECDSA_PRIV)
    assert sk.public_key == pk
    assert sk.to_protobuf() == GO_ECDSA_PRIV


def test_ecdsa_verify_ignores_trailing_bytes_like_go() -> None:
    pk = PublicKey.from_protobuf(GO_ECDSA_PUB)
    assert pk.verify(FIXTURE_MSG, GO_ECDSA_SIG + b"\x00\xff")
    inner = GO_ECDSA_SIG[2:] + b"\x05\x00"  # extra element inside the SEQUENCE: asn1 ignores it
    assert pk.verify(FIXTURE_MSG, b"\x30" + bytes([len(inner)]) + inner)


def test_ecdsa_verify_rejects_bad_der() -> None:
    pk = PublicKey.from_protobuf(GO_ECDSA_PUB)
    r, s = int.from_bytes(GO_ECDSA_SIG[5:37], "big"), int.from_bytes(GO_ECDSA_SIG[40:], "big")
    r_body = r.to_bytes(33, "big")
    padded = b"\x02\x22\x00" + r_body  # r with a superfluous leading zero: not DER
    assert not pk.verify(FIXTURE_MSG, der_seq(padded, der_int(s)))
    long_len = b"\x30\x81\x46" + GO_ECDSA_SIG[2:]  # long-form length for a short body
    assert not pk.verify(FIXTURE_MSG, long_len)
    assert not pk.verify(FIXTURE_MSG, der_seq(der_int(-r), der_int(s)))
    assert not pk.verify(FIXTURE_MSG, der_seq(der_int(r), der_int(s + P256_N)))
    assert not pk.verify(FIXTURE_MSG, GO_ECDSA_SIG[:-1])
    assert not pk.verify(FIXTURE_MSG, b"")


def test_ed25519_rfc8032_vector() -> None:
    sk = PrivateKey.from_protobuf(key_pb(1, RFC8032_SEED + RFC8032_PUB))
    assert sk.public_key.raw() == RFC8032_PUB
    assert sk.sign(b"") == RFC8032_SIG
    pk = PublicKey.from_protobuf(key_pb(1, RFC8032_PUB))
    assert pk.verify(b"", RFC8032_SIG)
    assert not pk.verify(b"x", RFC8032_SIG)
    assert not pk.verify(b"", RFC8032_SIG[:-1])
    assert not pk.verify(b"", RFC8032_SIG + b"\x00")


def test_rsa_spec_key_signs_and_verifies() -> None:
    sk = PrivateKey.from_protobuf(RSA_PRIV)
    sig = sk.sign(FIXTURE_MSG)
    assert len(sig) == 512  # modulus length
    assert sk.sign(FIXTURE_MSG) == sig  # PKCS#1 v1.5 is deterministic
    pk = PublicKey.from_protobuf(RSA_PUB)
    assert pk.verify(FIXTURE_MSG, sig)
    assert not pk.verify(FIXTURE_MSG, sig[:-1])
    assert not pk.verify(FIXTURE_MSG + b".", sig)


# ================================ secp256k1 strict DER ==========================================
def _fixture_rs() -> tuple[int, int]:
    return int.from_bytes(GO_SECP_SIG[4:36], "big"), int.from_bytes(GO_SECP_SIG[38:], "big")


def test_secp256k1_high_s_accepted() -> None:
    r, s = _fixture_rs()
    pk = PublicKey.from_protobuf(GO_SECP_PUB)
    high = der_seq(der_int(r), der_int(SECP256K1_N - s))
    assert pk.verify(FIXTURE_MSG, high)


@pytest.mark.parametrize(
    "sig",
    [
        # r padded with a needless 00 (same value: OpenSSL alone might accept it)
        b"\x30\x45\x02\x21\x00" + GO_SECP_SIG[4:],
        # s padded
        b"\x30\x45" + GO_SECP_SIG[2:36] + b"\x02\x21\x00" + GO_SECP_SIG[38:],
        # trailing byte after the sequence
        b"\x30\x44" + GO_SECP_SIG[2:] + b"\x00",
        # outer length wrong
        b"\x30\x45" + GO_SECP_SIG[2:],
        # long-form outer length
        b"\x30\x81\x44" + GO_SECP_SIG[2:],
        # wrong tags
        b"\x31" + GO_SECP_SIG[1:],
        GO_SECP_SIG[:2] + b"\x03" + GO_SECP_SIG[3:],
        # truncated
        GO_SECP_SIG[:-1],
        b"",
    ],
)
def test_secp256k1_strict_der_rejections(sig: bytes) -> None:
    assert der.parse_secp256k1_signature(sig, SECP256K1_N) is None
    assert not PublicKey.from_protobuf(GO_SECP_PUB).verify(FIXTURE_MSG, sig)


def test_secp256k1_strict_der_negative_zero_and_range() -> None:
    n = SECP256K1_N
    assert der.parse_secp256k1_signature(H("3006020180020101"), n) is None  # r = -128
    assert der.parse_secp256k1_signature(H("30060201010201ff"), n) is None  # s negative
    assert der.parse_secp256k1_signature(H("3006020100020101"), n) is None  # r = 0
    assert der.parse_secp256k1_signature(H("3006020101020100"), n) is None  # s = 0
    assert der.parse_secp256k1_signature(H("3006020101020101"), n) == (1, 1)  # 8 bytes: minimum
    assert der.parse_secp256k1_signature(H("30050201010201"), n) is None  # 7 bytes
    assert der.parse_secp256k1_signature(der_seq(der_int(n), der_int(1)), n) is None  # r = n
    assert der.parse_secp256k1_signature(der_seq(der_int(n - 1), der_int(n - 1)), n) == (
        n - 1,
        n - 1,
    )
    big = der_seq(der_int(1 << 270), der_int(1 << 270))  # 73+ bytes
    assert der.parse_secp256k1_signature(big, n) is None


# ================================ round trips ===================================================
@pytest.fixture(scope="module")
def generated() -> dict[KeyType, PrivateKey]:
    return {kt: PrivateKey.generate(kt) for kt in KeyType}


@pytest.mark.parametrize("kt", list(KeyType))
def test_generate_sign_verify_round_trip(generated: dict[KeyType, PrivateKey], kt: KeyType) -> None:
    sk = generated[kt]
    assert sk.key_type is kt
    msg = b"noise-libp2p-static-key:" + bytes(range(32))
    sig = sk.sign(msg)
    assert sk.public_key.verify(msg, sig)
    assert not sk.public_key.verify(msg + b"x", sig)
    flipped = bytearray(sig)
    flipped[len(flipped) // 2] ^= 0x01
    assert not sk.public_key.verify(msg, bytes(flipped))
    other = generated[KeyType.Ed25519 if kt is not KeyType.Ed25519 else KeyType.Secp256k1]
    assert not other.public_key.verify(msg, sig)
    # protobuf round trips keep identity
    sk2 = PrivateKey.from_protobuf(sk.to_protobuf())
    assert sk2 == sk and sk2.public_key == sk.public_key
    pk2 = PublicKey.from_protobuf(sk.public_key.to_protobuf())
    assert pk2 == sk.public_key and hash(pk2) == hash(sk.public_key)
    assert pk2.verify(msg, sig)
    prefix = {
        KeyType.Ed25519: "12D3KooW",
        KeyType.Secp256k1: "16Uiu2HA",
        KeyType.ECDSA: "Qm",
        KeyType.RSA: "Qm",
    }[kt]
    assert str(PeerId.from_public_key(sk.public_key)).startswith(prefix)
    assert "PrivateKey(" in repr(sk) and sk.raw().hex() not in repr(sk)


def test_secp256k1_signatures_are_deterministic_and_low_s(
    generated: dict[KeyType, PrivateKey],
) -> None:
    sk = generated[KeyType.Secp256k1]
    for i in range(20):
        msg = b"m%d" % i
        sig = sk.sign(msg)
        assert sig == sk.sign(msg)
        _, s = decode_dss_signature(sig)
        assert s <= SECP256K1_N // 2


def test_generated_ed25519_private_layout(generated: dict[KeyType, PrivateKey]) -> None:
    sk = generated[KeyType.Ed25519]
    pb = sk.to_protobuf()
    assert pb[:4] == H("08011240") and pb[-32:] == sk.public_key.raw()
    assert generated[KeyType.Secp256k1].to_protobuf()[:4] == H("08021220")


def test_generate_rsa_bits_bounds() -> None:
    with pytest.raises(ValueError):
        PrivateKey.generate(KeyType.RSA, rsa_bits=1024)
    with pytest.raises(ValueError):
        PrivateKey.generate(KeyType.RSA, rsa_bits=8200)


def test_other_ecdsa_curves_accepted() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    sec1 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    sk = PrivateKey.from_protobuf(key_pb(3, sec1))
    sig = sk.sign(b"hi")
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pk = PublicKey.from_protobuf(key_pb(3, spki))
    assert pk == sk.public_key and pk.verify(b"hi", sig)
    # go signs SHA-256 for every curve: an independent check with cryptography
    key.public_key().verify(sig, b"hi", ec.ECDSA(hashes.SHA256()))


# ================================ key encodings =================================================
def test_ed25519_legacy_96_byte_private() -> None:
    data = ED25519_PRIV[4:]
    sk = PrivateKey.from_protobuf(key_pb(1, data + data[32:]))
    assert sk.to_protobuf() == ED25519_PRIV  # written back as 64 bytes
    with pytest.raises(KeyDecodeError):
        PrivateKey.from_protobuf(key_pb(1, data + bytes(32)))  # copies disagree


def test_ed25519_private_public_half_must_match_seed() -> None:
    data = bytearray(ED25519_PRIV[4:])
    data[40] ^= 1
    with pytest.raises(KeyDecodeError):
        PrivateKey.from_protobuf(key_pb(1, bytes(data)))
    with pytest.raises(KeyDecodeError):
        PrivateKey.from_protobuf(key_pb(1, bytes(data[:32])))  # bare seed: go rejects
    with pytest.raises(KeyDecodeError):
        PublicKey.from_protobuf(key_pb(1, bytes(31)))


def _secp_points() -> tuple[bytes, bytes]:
    pt = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), SECP_PUB[4:])
    unc = pt.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return SECP_PUB[4:], unc


def test_secp256k1_public_point_forms_reencode_compressed() -> None:
    compressed, unc = _secp_points()
    hybrid = bytes([6 | (unc[64] & 1)]) + unc[1:]
    want = PeerId.from_string("16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY")
    for form in (unc, hybrid):
        pk = PublicKey.from_protobuf(key_pb(2, form))
        assert pk.raw() == compressed and pk.to_protobuf() == SECP_PUB
        assert PeerId.from_public_key(pk) == want
    wrong_parity = bytes([7 - (unc[64] & 1)]) + unc[1:]
    with pytest.raises(KeyDecodeError):
        PublicKey.from_protobuf(key_pb(2, wrong_parity))


@pytest.mark.parametrize(
    "data",
    [
        b"\x02" + bytes(32),  # x = 0: not on the curve (0^3 + 7 is not a square mod p)
        b"\x05" + bytes(32),
        b"\x04" + bytes(64),
        SECP_PUB[4:-1],
        b"",
    ],
)
def test_secp256k1_bad_public(data: bytes) -> None:
    with pytest.raises(KeyDecodeError):
        PublicKey.from_raw(KeyType.Secp256k1, data)


@pytest.mark.parametrize(
    "data",
    [bytes(32), SECP256K1_N.to_bytes(32, "big"), b"\xff" * 32, SECP_PRIV[5:], SECP_PRIV[4:] + b"0"],
)
def test_secp256k1_bad_private(data: bytes) -> None:
    with pytest.raises(KeyDecodeError):
        PrivateKey.from_protobuf(key_pb(2, data))


def test_ecdsa_public_must_be_canonical_pkix_on_go_curves() -> None:
    spki = ECDSA_PUB[4:]  # 30 59 | 30 13 <algorithm, 21 bytes> | 03 42 00 04 X Y
    alg_id = spki[2 : 2 + 21]
    pt = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), spki[26:])
    comp_point = pt.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    comp_der = der_seq(alg_id, b"\x03\x22\x00" + comp_point)
    assert serialization.load_der_public_key(comp_der).public_numbers() == pt.public_numbers()
    with pytest.raises(KeyDecodeError):
        PublicKey.from_raw(KeyType.ECDSA, comp_der)  # Go's x509 wants uncompressed points
    k1 = ec.generate_private_key(ec.SECP256K1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyDecodeError):
        PublicKey.from_raw(KeyType.ECDSA, k1)  # secp256k1 in PKIX is not an ECDSA key to go
    with pytest.raises(KeyDecodeError):
        PublicKey.from_raw(KeyType.ECDSA, RSA_PUB[5:])  # an RSA key under type ECDSA
    with pytest.raises(KeyDecodeError):
        PublicKey.from_raw(KeyType.ECDSA, ECDSA_PUB[4:] + b"\x00")


def test_ecdsa_private_must_be_sec1() -> None:
    sk = serialization.load_der_private_key(ECDSA_PRIV[4:], password=None)
    pkcs8 = sk.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyDecodeError):
        PrivateKey.from_protobuf(key_pb(3, pkcs8))
    with pytest.raises(KeyDecodeError):
        PrivateKey.from_protobuf(key_pb(3, ECDSA_PRIV[4:-1]))


# ================================ RSA size limits ===============================================
def test_rsa_1024_rejected() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyDecodeError, match="1024"):
        PublicKey.from_protobuf(key_pb(0, spki))
    with pytest.raises(KeyDecodeError, match="1024"):
        PrivateKey.from_protobuf(key_pb(0, pkcs1))


def _spki_with_modulus(bits: int) -> bytes:
    n = (1 << (bits - 1)) | 0xC0FFEE1  # odd, exactly `bits` long: no key generation needed
    pub = rsa.RSAPublicNumbers(65537, n).public_key()
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_rsa_public_size_bounds() -> None:
    assert PublicKey.from_raw(KeyType.RSA, _spki_with_modulus(8192)).key_type is KeyType.RSA
    with pytest.raises(KeyDecodeError, match="8704"):
        PublicKey.from_protobuf(key_pb(0, _spki_with_modulus(8704)))
    with pytest.raises(KeyDecodeError):
        PublicKey.from_raw(KeyType.RSA, _spki_with_modulus(2047))


def test_rsa_huge_private_rejected_before_openssl_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    n = (1 << 8703) | 1
    fake = der_seq(*(der_int(v) for v in (0, n, 65537, n - 5, 3, 5, 1, 1, 1)))

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("OpenSSL was asked to load an oversized RSA key")

    monkeypatch.setattr(key_codecs.serialization, "load_der_private_key", boom)
    with pytest.raises(KeyDecodeError, match="8704"):
        PrivateKey.from_protobuf(key_pb(0, fake))


def test_rsa_inconsistent_private_rejected() -> None:
    sk = serialization.load_der_private_key(RSA_PRIV[5:], password=None)
    nums = sk.private_numbers()
    # swap in a d that is off by one: structurally fine, mathematically wrong
    bad = der_seq(
        *(
            der_int(v)
            for v in (
                0,
                nums.public_numbers.n,
                nums.public_numbers.e,
                nums.d + 2,
                nums.p,
                nums.q,
                nums.dmp1,
                nums.dmq1,
                nums.iqmp,
            )
        )
    )
    with pytest.raises(KeyDecodeError):
        PrivateKey.from_protobuf(key_pb(0, bad))


def test_rsa_pkcs1_public_is_not_pkix() -> None:
    pkcs1 = serialization.load_der_public_key(RSA_PUB[5:]).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    with pytest.raises(KeyDecodeError):
        PublicKey.from_raw(KeyType.RSA, pkcs1)


# ================================ key protobuf ==================================================
def test_protobuf_any_order_duplicates_unknown_fields() -> None:
    data = ED25519_PUB[4:]
    reordered = b"\x12\x20" + data + b"\x08\x01"
    dup = b"\x08\x02\x12\x01x" + ED25519_PUB  # earlier values overwritten by later ones
    unknown = ED25519_PUB + b"\x18\x05" + b"\x22\x01z"
    nonminimal = b"\x08\x81\x00\x12\xa0\x00" + data  # protobuf tolerates non-minimal varints
    want = PeerId.from_string("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq")
    for pb in (reordered, dup, unknown, nonminimal):
        pk = PublicKey.from_protobuf(pb)
        assert pk.to_protobuf() == ED25519_PUB
        assert PeerId.from_public_key(pk) == want


@pytest.mark.parametrize(
    "pb",
    [
        b"",
        b"\x08\x01",  # no Data
        b"\x12\x20" + bytes(32),  # no Type
        b"\x0a\x01\x01\x12\x20" + bytes(32),  # Type as bytes
        b"\x08\x01\x10\x05",  # Data as varint
        b"\x08\x01\x12\x21" + bytes(32),  # truncated
        b"\x08\x01\x12",
        b"\x08\x01\x0f",  # wire type 7
        b"\x00\x01",  # field 0
    ],
)
def test_protobuf_malformed(pb: bytes) -> None:
    with pytest.raises(KeyDecodeError):
        PublicKey.from_protobuf(pb)
    with pytest.raises(KeyDecodeError):
        PrivateKey.from_protobuf(pb)


@pytest.mark.parametrize("type_bytes", [b"\x04", b"\x7f", b"\xff\x01", b"\xff\xff\xff\xff\x0f"])
def test_unknown_key_type(type_bytes: bytes) -> None:
    pb = b"\x08" + type_bytes + b"\x12\x20" + bytes(32)
    with pytest.raises(UnsupportedKeyType):
        PublicKey.from_protobuf(pb)
    with pytest.raises(UnsupportedKeyType):
        PrivateKey.from_protobuf(pb)
    with pytest.raises(UnsupportedKeyType):
        PublicKey.from_raw(7, bytes(32))


def test_oversized_public_protobuf_refused() -> None:
    with pytest.raises(KeyDecodeError):
        PublicKey.from_protobuf(key_pb(0, bytes(5000)))


def test_public_key_parse_is_cached() -> None:
    a = PublicKey.from_protobuf(SECP_PUB)
    assert PublicKey.from_protobuf(bytearray(SECP_PUB)) is a


def test_parse_key_type() -> None:
    assert parse_key_type("Ed25519") is KeyType.Ed25519
    assert parse_key_type("SECP256K1") is KeyType.Secp256k1
    assert parse_key_type("ecdsa") is KeyType.ECDSA
    assert parse_key_type(" rsa ") is KeyType.RSA
    assert [int(k) for k in (KeyType.RSA, KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA)] == [
        0,
        1,
        2,
        3,
    ]
    with pytest.raises(UnsupportedKeyType):
        parse_key_type("dsa")


# ================================ peer IDs ======================================================
@pytest.mark.parametrize(
    "mh",
    [
        b"",
        b"\x00",  # no length
        b"\x00\x00",  # empty identity digest
        b"\x00\x05abc",  # length larger than the digest
        b"\x00\x01ab",  # trailing byte
        b"\x12\x1f" + bytes(31),  # sha2-256 must be 32 bytes
        b"\x12\x20" + bytes(31),
        b"\x13\x40" + bytes(64),  # sha2-512: not a libp2p peer ID
        b"\x80\x00\x01a",  # non-minimal varint code
        b"\x00\x80\x01" + bytes(128) + b"x",
        b"\x00\x89\x08" + bytes(1033),  # over the 1 KiB cap
    ],
)
def test_peer_id_bytes_rejected(mh: bytes) -> None:
    with pytest.raises(InvalidPeerId):
        PeerId.from_bytes(mh)


@pytest.mark.parametrize(
    "s",
    [
        "",
        "Qm",
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3p0",  # '0' is not base58
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pqq",  # one character too many
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3p",  # one too few
        " 12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq\n",
        # CID with codec dag-pb (0x70) instead of libp2p-key
        "bafybeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe",
        "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqx",  # truncated
        "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxE",  # mixed case
        "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe=",
        "xafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe",  # unknown multibase
        "zQmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",  # CIDv0 bytes under multibase
        "f0172",
        "Q" * 5000,
    ],
)
def test_peer_id_strings_rejected(s: str) -> None:
    with pytest.raises(InvalidPeerId):
        PeerId.from_string(s)


def test_peer_id_other_multibases_accepted() -> None:
    pid = PeerId.from_string("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
    cid_bytes = b"\x01\x72" + pid.to_bytes()
    assert PeerId.from_string("B" + pid.to_cid()[1:].upper()) == pid
    assert PeerId.from_string("f" + cid_bytes.hex()) == pid
    assert PeerId.from_string("F" + cid_bytes.hex().upper()) == pid


def test_peer_id_value_semantics() -> None:
    a = PeerId.from_string("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq")
    b = PeerId.from_string("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
    assert a != b and len({a, b, PeerId(a.to_bytes())}) == 2
    assert sorted([b, a]) == [a, b]  # byte order: identity (0x00) before sha2-256 (0x12)
    assert bytes(a) == a.to_bytes()
    assert repr(a) == "PeerId('12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq')"
    assert a != "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"
    assert not a.matches(PublicKey.from_protobuf(SECP_PUB))


def test_peer_id_wants_bytes() -> None:
    with pytest.raises(TypeError):
        PeerId(38)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PeerId("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq")  # type: ignore[arg-type]


def test_extract_public_key_from_garbage_identity() -> None:
    pid = PeerId.from_bytes(b"\x00\x03abc")
    with pytest.raises(KeyDecodeError):
        pid.extract_public_key()


# ================================ key files =====================================================
def test_key_file_binary_round_trip(tmp_path: pathlib.Path) -> None:
    sk = PrivateKey.from_protobuf(SECP_PRIV)
    path = tmp_path / "key"
    save_private_key_file(path, sk)
    assert path.read_bytes() == SECP_PRIV
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_private_key_file(path) == sk
    assert os.listdir(tmp_path) == ["key"]  # no temp file left behind


def test_key_file_masa_hex(tmp_path: pathlib.Path) -> None:
    sk = PrivateKey.from_protobuf(GO_SECP_PRIV)
    path = tmp_path / "masa_oracle_key"
    path.write_bytes(b"stale contents that are longer than the key")
    os.chmod(path, 0o644)
    save_private_key_file(str(path), sk, hex_text=True)
    assert path.read_bytes() == (
        b"080212203141bd606a504c44f23494d8f3174ef25b1fb9b52daa07d058be83b6e046b158"
    )
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_private_key_file(path) == sk
    path.write_text(GO_SECP_PRIV.hex().upper() + "\n")  # tolerate a newline and upper case
    assert load_private_key_file(path).public_key.to_protobuf() == GO_SECP_PUB


@pytest.mark.parametrize(
    "content", [b"", b"zz", b"0802", b"\x08\x01\x12", b"\xff\xfe", b"a" * 70000]
)
def test_key_file_garbage(tmp_path: pathlib.Path, content: bytes) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(KeyDecodeError):
        load_private_key_file(path)


# ================================ sans-IO ========================================================
@pytest.mark.parametrize("module", [identity, der, key_codecs])
def test_module_does_no_io_imports(module: object) -> None:
    tree = ast.parse(pathlib.Path(module.__file__).read_text())  # type: ignore[attr-defined]
    names = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert not names & {"anyio", "trio", "asyncio", "socket", "time"}


# ================================ properties ====================================================
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
key_types = st.sampled_from([0, 1, 2, 3, 4])


@st.composite
def key_protobufs(draw: st.DrawFn) -> bytes:
    """Mostly well-formed key protobufs with hostile Data, plus mutations of real keys."""
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return key_pb(draw(key_types), draw(st.binary(max_size=200)))
    base = draw(
        st.sampled_from(
            [ED25519_PUB, SECP_PUB, ECDSA_PUB, RSA_PUB, GO_SECP_PUB]
            + [ED25519_PRIV, SECP_PRIV, ECDSA_PRIV]
        )
    )
    if choice == 1:
        i = draw(st.integers(0, len(base) - 1))
        return base[:i] + bytes([draw(st.integers(0, 255))]) + base[i + 1 :]
    return base[: draw(st.integers(0, len(base)))]


@PROPS
@given(st.one_of(st.binary(max_size=300), key_protobufs()))
def test_property_public_key_parse_total(data: bytes) -> None:
    try:
        pk = PublicKey.from_protobuf(data)
    except KeyDecodeError:
        return
    # a parsed key is canonical and stable
    assert PublicKey.from_protobuf(pk.to_protobuf()) == pk
    assert pk.to_protobuf()[0] == 0x08 and pk.to_protobuf()[2] == 0x12
    assert pk.verify(b"msg", b"\x30\x06\x02\x01\x01\x02\x01\x01") is False


@PROPS
@given(st.one_of(st.binary(max_size=300), key_protobufs()))
def test_property_private_key_parse_total(data: bytes) -> None:
    try:
        sk = PrivateKey.from_protobuf(data)
    except KeyDecodeError:
        return
    assert PrivateKey.from_protobuf(sk.to_protobuf()) == sk


@PROPS
@given(st.binary(max_size=80))
def test_property_verify_never_raises(sig: bytes) -> None:
    for pb in (ED25519_PUB, SECP_PUB, ECDSA_PUB):
        assert PublicKey.from_protobuf(pb).verify(FIXTURE_MSG, sig) is False


@PROPS
@given(st.binary(max_size=80))
def test_property_der_parsers_total(data: bytes) -> None:
    rs = der.parse_secp256k1_signature(data, SECP256K1_N)
    if rs is not None:  # whatever strict DER accepts re-encodes to exactly the same bytes
        assert der_seq(der_int(rs[0]), der_int(rs[1])) == data
    der.parse_go_asn1_ecdsa_signature(data)


@PROPS
@given(st.integers(1, SECP256K1_N - 1), st.integers(1, SECP256K1_N - 1), st.binary(max_size=4))
def test_property_valid_der_signatures_accepted(r: int, s: int, trailing: bytes) -> None:
    sig = der_seq(der_int(r), der_int(s))
    assert der.parse_secp256k1_signature(sig, SECP256K1_N) == (r, s)
    assert der.parse_go_asn1_ecdsa_signature(sig + trailing) == (r, s)  # go ignores the tail
    if trailing:
        assert der.parse_secp256k1_signature(sig + trailing, SECP256K1_N) is None


@st.composite
def multihashes(draw: st.DrawFn) -> bytes:
    code = draw(st.sampled_from([0x00, 0x12, 0x13, 0x80]))
    digest = draw(st.binary(max_size=60))
    length = draw(st.sampled_from([len(digest), len(digest) + 1, max(len(digest) - 1, 0)]))
    return der_len_varint(code) + der_len_varint(length) + digest


@PROPS
@given(st.one_of(st.binary(max_size=80), multihashes()))
def test_property_peer_id_from_bytes_total(data: bytes) -> None:
    try:
        pid = PeerId.from_bytes(data)
    except InvalidPeerId:
        return
    assert pid.to_bytes() == data
    assert PeerId.from_string(pid.to_base58()) == pid == PeerId.from_string(pid.to_cid())


B58_PLUS_BAD = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0OIl"
b58_text = st.text(alphabet=B58_PLUS_BAD, max_size=60)
b32_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567=", max_size=70)


@PROPS
@given(
    st.one_of(
        st.text(max_size=80),
        b58_text.map(lambda s: "1" + s),
        b58_text.map(lambda s: "Qm" + s),
        b32_text.map(lambda s: "bafz" + s),
        multihashes().map(lambda mh: "f0172" + mh.hex()),
    )
)
def test_property_peer_id_from_string_total(s: str) -> None:
    try:
        pid = PeerId.from_string(s)
    except DecodeError as exc:
        assert isinstance(exc, InvalidPeerId)
        return
    assert PeerId.from_string(pid.to_base58()) == pid
    assert PeerId.from_string(pid.to_cid()) == pid
