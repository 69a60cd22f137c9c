"""A yamux session fed frame by frame: we play the client by hand, the sans-IO core answers.

Every frame is a 12-byte header (version, type, flags, stream ID, length), then `length` payload
bytes for Data frames only: https://github.com/hashicorp/yamux/blob/master/spec.md ("Framing").
Run it: python examples/yamux_frames.py
"""

from p2p.mux.yamux import StreamOpened, YamuxConnection
from p2p.mux.yamux_frame import (ACK, DATA, FIN, PING, SYN, WINDOW_UPDATE, decode_header,
                                 encode_header)

TYPES = {DATA: "data", WINDOW_UPDATE: "window_update", PING: "ping", 3: "go_away"}
FLAGS = {SYN: "SYN", ACK: "ACK", FIN: "FIN", 0x8: "RST"}


def show(direction: str, wire: bytes) -> None:
    """Print every frame in `wire` (headers decoded, payloads shown as text)."""
    pos = 0
    while pos < len(wire):
        h = decode_header(wire, pos)
        flags = [name for bit, name in FLAGS.items() if h.flags & bit]
        payload = wire[pos + 12 : pos + 12 + h.length] if h.type == DATA else b""
        text = f" {payload!r}" if payload else ""
        print(f"{direction} {TYPES[h.type]:<13} flags={flags} stream={h.stream_id} "
              f"length={h.length}{text}")
        pos += 12 + len(payload)


server = YamuxConnection(is_client=False)
frames = [
    encode_header(WINDOW_UPDATE, SYN, 1, 0),            # open stream 1 (go opens with a window update)
    encode_header(DATA, 0, 1, 5) + b"hello",             # five bytes on it
    encode_header(PING, SYN, 0, 7),                      # a ping, opaque value 7
    encode_header(WINDOW_UPDATE, FIN, 1, 0),             # half-close our side of stream 1
]
for frame in frames:
    show("client ->", frame)
    for event in server.receive_data(frame):
        print("           server event:", event)
        if isinstance(event, StreamOpened):
            server.accept(event.stream_id)                # the application takes the stream
    show("server ->", server.data_to_send())

print("server reads stream 1:", server.read(1, 100))
server.send(1, b"HELLO")
server.send_eof(1)
show("server ->", server.data_to_send())
