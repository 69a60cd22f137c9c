"""The AEAD's own limit: ChaCha20-Poly1305 sealing and opening Noise's frames on one core.

What no Noise transport in Python can beat on this machine: `cryptography`'s ChaCha20Poly1305
sealing 65519-byte plaintexts into 65535-byte frames (Noise's largest, as our stack and go make
them for bulk writes) and opening them again, timed in one process on one core, no sockets, no
muxer, no event loop. From the two rates:

    bulk (one way): the sender only seals and the receiver only opens, each in its own process,
                    so the limit is the slower of the two: min(seal, open) MB/s of payload.
    echo:           each process seals and opens every payload byte once (the dialer seals its
                    data and opens the echo; the listener opens and seals it back), so the limit
                    is 1 / (1/seal + 1/open) MB/s of payload.

Both assume each process has a core of its own (two peers on two cores); they bound the stack's
crypto, not its I/O. Timed in CPU time (`time.process_time`), so the bound is the AEAD's speed on
one core whatever else the machine runs; the stacks' figures are wall time, so on a loaded machine
ours/bound comes out lower than the same code reaches on a quiet one. Same contract as the bench peers (scenarios `bulk` and `echo`): `listen`
prints {"addr": "-"} (there is nothing to connect to) and waits for stdin to close; `dial` times
`size` bytes of frames and prints {"mb_per_s": ..., "seal_mb_per_s": ..., "open_mb_per_s": ...}.
"""

from __future__ import annotations

import os
import sys
import time

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bench.peer_common import emit, parse_args

PLAINTEXT = 65519  # Noise: a 65535-byte message minus the 16-byte tag
TAG = 16


def _nonce(n: int) -> bytes:
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


def rates(size: int) -> tuple[float, float]:
    """Seal then open `size` bytes of payload in full frames; (seal, open) payload MB/s."""
    aead = ChaCha20Poly1305(os.urandom(32))
    frames = max(1, size // PLAINTEXT)
    block = memoryview(bytes(PLAINTEXT))
    sealed = bytearray(PLAINTEXT + TAG)
    out = memoryview(sealed)
    start = time.process_time()
    for n in range(frames):
        aead.encrypt_into(_nonce(n), block, b"", out)
    seal_s = time.process_time() - start
    one = bytes(sealed)  # opening the same frame each time: the nonce must match it
    start = time.process_time()
    for _ in range(frames):
        aead.decrypt(_nonce(frames - 1), one, b"")
    open_s = time.process_time() - start
    total = frames * PLAINTEXT
    return total / seal_s / 1e6, total / open_s / 1e6


def dial(scenario: str, params: dict) -> dict:
    seal, open_ = rates(params["size"])
    if scenario == "bulk":
        limit = min(seal, open_)
    elif scenario == "echo":
        limit = 1 / (1 / seal + 1 / open_)
    else:
        raise ValueError(f"the AEAD bound has no scenario {scenario!r}")
    return {"mb_per_s": round(limit, 3), "seal_mb_per_s": round(seal, 3),
            "open_mb_per_s": round(open_, 3)}


def main() -> None:
    args = parse_args()
    try:
        if args.role == "listen":
            emit({"addr": "-"})
            sys.stdin.read()
        else:
            emit(dial(args.scenario, args.params))
    except Exception as exc:
        emit({"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
