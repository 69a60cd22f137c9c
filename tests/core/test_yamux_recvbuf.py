"""The yamux core's per-stream receive buffer gives exactly what one bytearray would have."""

from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.recv_buffer import RecvBuffer

ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=300)),
        st.tuples(st.just("take"), st.integers(min_value=1, max_value=700)),
        st.tuples(st.just("clear"), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_matches_a_bytearray(operations):
    buf, model = RecvBuffer(), bytearray()
    for op, arg in operations:
        if op == "append":
            buf.append(arg)
            model += arg
        elif op == "take":
            if not model:
                continue
            got = buf.take(arg)
            assert type(got) is bytes
            assert got == bytes(model[:arg])
            del model[:arg]
        else:
            buf.clear()
            model.clear()
        assert len(buf) == len(model) and bool(buf) == bool(model)


def test_large_piece_read_in_small_steps_is_not_copied_whole_each_time():
    buf = RecvBuffer()
    piece = bytes(range(256)) * 4096  # 1 MiB
    buf.append(piece)
    out = bytearray()
    while buf:
        out += buf.take(4096)
    assert out == piece
