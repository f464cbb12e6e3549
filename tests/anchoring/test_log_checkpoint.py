from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anchoring.checkpoint import MAX_SIZE, Checkpoint, open_checkpoint, sign_checkpoint
from anchoring.errors import BadSignature, MalformedCheckpoint, OriginMismatch, UnknownSigner
from anchoring.note import Signer, sign_note

ORIGIN = "mrv.example/log"
LOG = Signer.generate(ORIGIN)
ROOT = bytes(range(32))

line = st.text(st.characters(min_codepoint=0x20, blacklist_categories=["Cs"]), min_size=1, max_size=40)


def test_text_matches_the_c2sp_example() -> None:
    # The example of c2sp.org/tlog-checkpoint.
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = Checkpoint.from_text(text)
    assert (checkpoint.origin, checkpoint.size, checkpoint.extensions) == (
        "example.com/behind-the-sofa",
        20852163,
        (),
    )
    assert checkpoint.to_text() == text


@given(line, st.integers(0, MAX_SIZE), st.binary(min_size=32, max_size=32), st.lists(line, max_size=3))
def test_text_round_trips(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.from_text(checkpoint.to_text()) == checkpoint


def test_signed_checkpoint_round_trips() -> None:
    checkpoint = Checkpoint(ORIGIN, 1234, ROOT, ("ext one",))
    signed = sign_checkpoint(checkpoint, LOG)
    assert signed.startswith(checkpoint.to_text().encode() + "\n\u2014 mrv.example/log ".encode())
    assert open_checkpoint(signed, LOG.verifier, origin=ORIGIN) == checkpoint


def test_open_refuses_other_logs_and_keys() -> None:
    signed = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), LOG)
    with pytest.raises(OriginMismatch):
        open_checkpoint(signed, LOG.verifier, origin="other.example/log")
    with pytest.raises(UnknownSigner):
        open_checkpoint(signed, Signer.generate(ORIGIN).verifier, origin=ORIGIN)
    with pytest.raises(BadSignature):
        open_checkpoint(signed.replace(b"\n5\n", b"\n6\n"), LOG.verifier, origin=ORIGIN)


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n5\n",
        f"{ORIGIN}\n5\nAAAA\n",
        f"{ORIGIN}\n05\n" + "A" * 43 + "=\n",
        f"{ORIGIN}\n-5\n" + "A" * 43 + "=\n",
        f"{ORIGIN}\n5 \n" + "A" * 43 + "=\n",
        f"{ORIGIN}\n{2**64}\n" + "A" * 43 + "=\n",
        "\n5\n" + "A" * 43 + "=\n",
        f"{ORIGIN}\n5\n" + "A" * 43 + "=\n\n",
        f"{ORIGIN}\n5\n" + "A" * 43 + "=",
        f"{ORIGIN}\n5\n" + "A" * 43 + "B\n",
    ],
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(MalformedCheckpoint):
        Checkpoint.from_text(text)


def test_a_signed_note_that_is_no_checkpoint_is_refused() -> None:
    signed = sign_note(f"{ORIGIN}\n05\n{'A' * 43}=\n", LOG)
    with pytest.raises(MalformedCheckpoint):
        open_checkpoint(signed, LOG.verifier, origin=ORIGIN)


def test_construction_validates() -> None:
    for args in [("", 1, ROOT), (ORIGIN, -1, ROOT), (ORIGIN, 1, ROOT[:31]), ("a\nb", 1, ROOT)]:
        with pytest.raises(ValueError):
            Checkpoint(*args)
    with pytest.raises(ValueError):
        Checkpoint(ORIGIN, 1, ROOT, ("",))
