"""Deltas must be whole characters and never leak the start of a stop sequence."""

from services.inference.text_stream import StopAwareTextStream


def test_multibyte_character_split_across_tokens_is_held_until_complete() -> None:
    stream = StopAwareTextStream()
    encoded = "Weiche ü".encode()
    first = stream.feed(encoded[:-1])  # ends inside the two-byte ü
    second = stream.feed(encoded[-1:])
    assert first.text == "Weiche "
    assert second.text == "ü"
    assert stream.flush() == ""


def test_stop_sequence_spanning_tokens_is_never_emitted() -> None:
    stream = StopAwareTextStream(stop=("\n### ",))
    emitted = [stream.feed(piece.encode()) for piece in ("Fix the lock", "\n#", "## Next")]
    text = "".join(step.text for step in emitted)
    assert text == "Fix the lock"
    assert emitted[-1].stopped
    assert stream.feed(b"more").text == ""


def test_held_back_prefix_is_released_when_it_does_not_become_a_stop() -> None:
    stream = StopAwareTextStream(stop=("END",))
    assert stream.feed(b"value E").text == "value "
    assert stream.feed(b"N").text == ""
    step = stream.feed(b"abled")
    assert step.text == "ENabled"
    assert not step.stopped


def test_flush_returns_pending_text_at_end_of_generation() -> None:
    stream = StopAwareTextStream(stop=("STOP",))
    stream.feed(b"done ST")
    assert stream.flush() == "ST"


def test_earliest_of_several_stop_sequences_wins() -> None:
    stream = StopAwareTextStream(stop=("B", "A"))
    step = stream.feed(b"xxAyyB")
    assert step.text == "xx"
    assert step.stopped
