"""A multistream-select negotiation between two sans-IO machines: the first proposal is refused.

Each message is uvarint(length) + text + "\\n":
https://github.com/multiformats/multistream-select ("Protocol").
Run it: python examples/multistream_negotiation.py
"""

from p2p.multistream import Dialer, Listener

dialer = Dialer(["/chat/2.0.0", "/chat/1.0.0"])           # what we would like, best first
listener = Listener(["/chat/1.0.0", "/ipfs/ping/1.0.0"])  # what the other side serves


def deliver(name: str, sender, receiver) -> None:
    """Hand what `sender` queued to `receiver` and print the events it makes of it."""
    data = sender.data_to_send()
    if data:
        print(f"{name:>8} -> {data!r}")
        for event in receiver.receive_data(data):
            print(f"{'':>12}{event}")


while not (dialer.done and listener.done):
    deliver("dialer", dialer, listener)      # header + proposal; after an `na`, the next proposal
    deliver("listener", listener, dialer)    # header, then `na` or the echo that agrees

print("agreed on", dialer.tried[-1], "after trying", dialer.tried)
