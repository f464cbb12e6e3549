from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anchoring.errors import BadSignature, MalformedKey, MalformedNote, UnknownSigner
from anchoring.note import MAX_SIGNATURES, Signer, Verifier, open_note, sign_note

# The example of golang.org/x/mod/sumdb/note: Ed25519 is deterministic, so we must match byte for byte.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()

LOG = Signer.generate("example.com/log")
WITNESS = Signer.generate("witness.example")


def test_go_sumdb_note_example_interoperates() -> None:
    signer = Signer.from_skey(GO_SKEY)
    verifier = Verifier.from_vkey(GO_VKEY)
    assert signer.verifier == verifier
    assert f"{verifier.key_id:08x}" == "c74f20a3"
    assert sign_note(GO_TEXT, signer) == GO_NOTE
    opened = open_note(GO_NOTE, [verifier])
    assert (opened.text, opened.signers) == (GO_TEXT, (verifier,))


def test_key_strings_round_trip() -> None:
    assert Verifier.from_vkey(GO_VKEY).vkey == GO_VKEY
    assert Signer.from_skey(GO_SKEY).skey == GO_SKEY
    restored = Signer.from_skey(LOG.skey)
    assert restored.verifier == LOG.verifier
    assert Verifier.from_vkey(LOG.verifier.vkey) == LOG.verifier
    # transparency-dev/formats' test key: a '+' inside the base64 must not split the key.
    plus = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    assert Verifier.from_vkey(plus).vkey == plus


def test_secret_key_stays_out_of_repr() -> None:
    secret = LOG.skey.split("+", 4)[4]  # PRIVATE+KEY+name+hash+base64 (which may itself hold "+")
    assert secret not in repr(LOG)


def test_every_mangled_verifier_key_is_refused() -> None:
    # As golang.org/x/mod's TestNewVerifier: every proper substring and every bumped byte fails.
    for i in range(len(GO_VKEY)):
        for j in range(i + 1, len(GO_VKEY) + 1):
            if (i, j) != (0, len(GO_VKEY)):
                with pytest.raises(MalformedKey):
                    Verifier.from_vkey(GO_VKEY[i:j])
        with pytest.raises(MalformedKey):
            Verifier.from_vkey(GO_VKEY[:i] + chr(ord(GO_VKEY[i]) + 1) + GO_VKEY[i + 1 :])
    with pytest.raises(MalformedKey):
        Verifier.from_vkey("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(MalformedKey):
        Signer.from_skey(GO_VKEY)


@given(st.text(st.characters(blacklist_categories=["Cs", "Cc"]) | st.just("\n"), max_size=200))
def test_any_text_round_trips(body: str) -> None:
    text = body + "\n"
    note = sign_note(text, LOG)
    assert open_note(note, [LOG.verifier]).text == text


def test_unknown_signatures_are_ignored_but_one_trusted_is_required() -> None:
    note = sign_note("hello\n", LOG)
    cosigned = note + sign_note("hello\n", WITNESS).split(b"\n\n")[1]
    assert open_note(cosigned, [LOG.verifier]).signers == (LOG.verifier,)
    assert open_note(cosigned, [LOG.verifier, WITNESS.verifier]).signers == (LOG.verifier, WITNESS.verifier)
    with pytest.raises(UnknownSigner, match=re.escape("example.com/log, witness.example")):
        open_note(cosigned, [Signer.generate("other").verifier])
    # Same name, other key: an unknown signer, not a bad signature.
    with pytest.raises(UnknownSigner):
        open_note(note, [Signer.generate("example.com/log").verifier])


def test_altered_notes_fail_the_signature() -> None:
    note = sign_note("size 10\n", LOG)
    with pytest.raises(BadSignature):
        open_note(note.replace(b"10", b"11"), [LOG.verifier])
    forged = note.split(b"\n\n")[0] + b"\n\n" + sign_note("other\n", LOG).split(b"\n\n")[1]
    with pytest.raises(BadSignature):
        open_note(forged, [LOG.verifier])


def _with_stray_bit(note: bytes) -> bytes:
    """The note with a base64 signature that decodes to the same bytes but is not canonical."""
    # 4 + 64 signature bytes end in one '=': the last character before it has 2 unused low bits.
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert note.endswith(b"=\n") and not note.endswith(b"==\n")
    return note[:-3] + bytes([alphabet[alphabet.index(note[-3]) ^ 1]]) + b"=\n"


@pytest.mark.parametrize(
    "change",
    [
        lambda n: n + b"trailing garbage\n",
        lambda n: n + b"\n",
        lambda n: n[:-1],
        lambda n: n.replace(b"\n\n", b"\n"),
        lambda n: n.replace("\u2014".encode(), b"-"),
        lambda n: n.replace(b"example.com/log ", b"example.com/log  "),
        lambda n: n.replace(b"hello", b"he\tllo"),
        lambda n: n.replace(b"hello", b"\xff"),
        lambda n: _with_stray_bit(n),
        lambda n: n + n.split(b"\n\n")[1],  # the same signature twice
        lambda n: n + "\u2014 x AAAA\n".encode(),  # too short for a key id and a signature
        lambda n: n + "\u2014 a+b AAAAAAAA\n".encode(),
    ],
)
def test_malformed_notes_are_refused(change: object) -> None:
    assert callable(change)
    with pytest.raises(MalformedNote):
        open_note(change(sign_note("hello\n", LOG)), [LOG.verifier])


def test_signature_count_is_bounded() -> None:
    extra = b"".join(
        sign_note("hello\n", Signer.generate(f"w{i}")).split(b"\n\n")[1] for i in range(MAX_SIGNATURES)
    )
    with pytest.raises(MalformedNote, match="more than"):
        open_note(sign_note("hello\n", LOG) + extra, [LOG.verifier])


def test_signing_refuses_bad_text_and_names() -> None:
    for text in ["no newline", "bell\a\n"]:
        with pytest.raises(ValueError):
            sign_note(text, LOG)
    for name in ["", "a b", "a+b", "tab\t"]:
        with pytest.raises(ValueError):
            Signer.generate(name)
