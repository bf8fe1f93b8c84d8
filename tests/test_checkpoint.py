"""Checkpoints and signed notes: the published Go reference vectors, our own vector, strictness."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vault.errors import VaultError
from vault.ledger.checkpoint import (
    Checkpoint,
    NoteError,
    Verifier,
    add_signature,
    key_id,
    open_checkpoint,
    open_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
)
from vault.ledger.merkle import EMPTY_ROOT, MemoryNodes, parent, root
from vault.sealing import LogSigner

VECTORS = json.loads((Path(__file__).parent / "vectors" / "c2sp_note.json").read_text())
PUB = VECTORS["published"]
OURS = VECTORS["vault"]
TEXT = PUB["text"].encode()
PETER_SIG = PUB["peter_sig_line"].encode()
ENOCH_SIG = PUB["enoch_sig_line"].encode()


def signer_from_seed(seed: bytes) -> LogSigner:
    # tests only: the vault's keyring never hands out or accepts raw seeds
    return LogSigner(Ed25519PrivateKey.from_private_bytes(seed))


def go_signer(skey: str) -> tuple[str, LogSigner]:
    """Decode a golang.org/x/mod/sumdb/note private key string (PRIVATE+KEY+name+id+key)."""
    private, key_word, name, _kid, key64 = skey.split("+", 4)
    assert (private, key_word) == ("PRIVATE", "KEY")
    raw = base64.b64decode(key64)
    assert raw[0] == 1
    return name, signer_from_seed(raw[1:])


PETER = parse_verifier_key(PUB["peter_vkey"])
ENOCH = parse_verifier_key(PUB["enoch_vkey"])


def message_of(fn, *args) -> str:
    with pytest.raises(NoteError) as info:
        fn(*args)
    assert isinstance(info.value, VaultError) and info.value.kind == "bad-note"
    return info.value.message


# --- the published example (golang.org/x/mod/sumdb/note) ----------------------------


def test_published_verifier_keys_parse_and_round_trip():
    assert PETER.name == "PeterNeumann"
    assert PETER.key_id == bytes.fromhex("c74f20a3")
    assert PETER.key_string() == PUB["peter_vkey"]
    assert verifier_key(PETER.name, PETER.public_key) == PUB["peter_vkey"]
    assert key_id("EnochRoot", ENOCH.public_key).hex() == "af0cfe78"
    assert str(ENOCH) == "EnochRoot+af0cfe78"


def test_published_note_verifies():
    body, signed = open_note(PUB["signed_note"].encode(), [PETER])
    assert body == TEXT
    assert signed == [PETER]


def test_signing_the_published_text_reproduces_the_published_note():
    # Ed25519 is deterministic: the Go reference's private key must give the same bytes
    name, signer = go_signer(PUB["peter_skey"])
    assert verifier_key(name, signer.public_key_bytes()) == PUB["peter_vkey"]
    assert sign_note(TEXT, name, signer) == PUB["signed_note"].encode()


def test_published_cosigned_note():
    note = PUB["cosigned_note"].encode()
    assert open_note(note, [PETER]) == (TEXT, [PETER])
    assert open_note(note, [ENOCH]) == (TEXT, [ENOCH])
    assert open_note(note, [ENOCH, PETER]) == (TEXT, [PETER, ENOCH])
    assert message_of(open_note, note, []) == "no signature by a known key"


def test_published_note_tampered():
    note = PUB["signed_note"].encode()
    # change any single byte of the text: the signature must no longer hold
    for i in range(len(TEXT)):
        bad = bytearray(note)
        bad[i] ^= 0x01
        with pytest.raises(NoteError):
            open_note(bytes(bad), [PETER])
    bad_text = note.replace(b"cryptography", b"cryptographY")
    assert message_of(open_note, bad_text, [PETER]) == (
        "invalid signature by key PeterNeumann+c74f20a3"
    )
    # a signature with four base64 characters inserted (as in note_test.go TestOpen)
    mangled = TEXT + b"\n" + PETER_SIG[:60] + b"ABCD" + PETER_SIG[60:]
    assert message_of(open_note, mangled, [PETER]) == (
        "invalid signature by key PeterNeumann+c74f20a3"
    )


def test_published_note_with_wrong_key():
    other = Verifier.for_key("PeterNeumann", signer_from_seed(b"\x07" * 32).public_key_bytes())
    # same name, another key id: an unknown key, ignored, so nothing known signed
    assert message_of(open_note, PUB["signed_note"].encode(), [other]) == (
        "no signature by a known key"
    )


def test_duplicate_and_unknown_signatures_are_tolerated():
    # note_test.go TestOpen "Duplicated verified and unverified signatures"
    enoch_abcd = ENOCH_SIG[:60] + b"ABCD" + ENOCH_SIG[60:]
    note = TEXT + b"\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    assert open_note(note, [PETER]) == (TEXT, [PETER])
    # but with Enoch known, its corrupted signature rejects the whole note
    assert message_of(open_note, note, [PETER, ENOCH]) == (
        "invalid signature by key EnochRoot+af0cfe78"
    )


def test_ambiguous_verifiers():
    twin = Verifier.__new__(Verifier)  # a forged verifier sharing Enoch's name and id
    object.__setattr__(twin, "name", "EnochRoot")
    object.__setattr__(twin, "key_id", ENOCH.key_id)
    object.__setattr__(twin, "public_key", PETER.public_key)
    note = TEXT + b"\n" + ENOCH_SIG
    assert message_of(open_note, note, [ENOCH, PETER, twin]) == "ambiguous key EnochRoot+af0cfe78"
    # the same verifier twice is not ambiguous
    assert open_note(note, [ENOCH, PETER, ENOCH]) == (TEXT, [ENOCH])


@pytest.mark.parametrize(
    ("note", "message"),
    [
        # the malformed messages of note_test.go TestOpen, with our (more specific) wording
        (TEXT, "malformed note: no blank line before the signatures"),
        (TEXT + b"\n", "malformed note: no signature lines"),
        (TEXT + b"\n" + PETER_SIG[:-1], "malformed note: it must end with a newline"),
        (
            b"\x01" + TEXT + b"\n" + PETER_SIG,
            "malformed note: control character other than newline",
        ),
        (b"\xff" + TEXT + b"\n" + PETER_SIG, "malformed note: not valid UTF-8"),
        (
            # as in Go, the name ends at the first space: "Name x08go…" is not base64
            TEXT + b"\n" + "— Bad Name ".encode() + PETER_SIG.split(b" ")[-1],
            "malformed note: bad signature encoding in line 1",
        ),
        (
            TEXT + b"\n" + "— Bad+Name ".encode() + PETER_SIG.split(b" ")[-1],
            "malformed note: invalid key name in signature line 1",
        ),
        (
            TEXT + b"\n" + PETER_SIG + b"Unexpected line.\n",
            "malformed note: signature line 2 does not start with '— '",
        ),
        (TEXT + b"\n" + PETER_SIG * 101, "malformed note: more than 100 signatures"),
        (TEXT + b"\r\n" + PETER_SIG, "malformed note: control character other than newline"),
        (
            TEXT + b"\n- PeterNeumann abcd\n",
            "malformed note: signature line 1 does not start with '— '",
        ),
        (
            TEXT + "\n— PeterNeumann AAAA\n".encode(),
            "malformed note: bad signature encoding in line 1",
        ),
        (
            TEXT + "\n— PeterNeumann not*base64\n".encode(),
            "malformed note: bad signature encoding in line 1",
        ),
        (TEXT + "\n— PeterNeumann\n".encode(), "malformed note: bad signature encoding in line 1"),
        (TEXT + "\n—  x08go\n".encode(), "malformed note: invalid key name in signature line 1"),
    ],
    ids=range(15),
)
def test_malformed_notes(note, message):
    assert message_of(open_note, note, [PETER]) == message


def test_many_signatures_up_to_the_limit_are_accepted():
    assert open_note(TEXT + b"\n" + PETER_SIG * 100, [PETER]) == (TEXT, [PETER])


def test_non_canonical_base64_signature_is_refused():
    b64 = PETER_SIG.decode().split(" ")[-1].strip()
    assert b64.endswith("M=")  # 68 bytes: the last character carries 2 spare bits
    loose = b64[:-2] + "N="  # same bytes for a lenient decoder, different text
    assert base64.b64decode(loose) == base64.b64decode(b64)
    note = TEXT + f"\n— PeterNeumann {loose}\n".encode()
    assert (
        message_of(open_note, note, [PETER]) == "malformed note: bad signature encoding in line 1"
    )


# --- verifier keys -------------------------------------------------------------------


def test_verifier_key_manglings_are_refused():
    # after note_test.go TestNewVerifier: every proper substring and every +1 byte change
    vkey = PUB["peter_vkey"]
    for i in range(len(vkey) + 1):
        for j in range(i + 1, len(vkey) + 1):
            if (i, j) != (0, len(vkey)):
                with pytest.raises(NoteError):
                    parse_verifier_key(vkey[i:j])
    for i in range(len(vkey)):
        bad = vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :]
        with pytest.raises(NoteError):
            parse_verifier_key(bad)
    for bad in PUB["bad_verifier_keys"]:
        with pytest.raises(NoteError):
            parse_verifier_key(bad)


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann", "malformed verifier key"),
        ("PeterNeumann+c74f20a3", "malformed verifier key"),
        (
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "malformed verifier key: invalid key name ''",
        ),
        (
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "malformed verifier key: invalid key name 'Peter Neumann'",
        ),
        (
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "malformed verifier key: the key id is not 8 lowercase hex digits",
        ),
        (
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "malformed verifier key: the key id is not 8 lowercase hex digits",
        ),
        ("PeterNeumann+c74f20a3+!!!!", "malformed verifier key: the key is not base64"),
        ("PeterNeumann+c74f20a3+", "malformed verifier key: the key is not base64"),
        (
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "malformed verifier key: the key id does not match the name and key",
        ),
        # Go's own wrong-length vector ends in non-canonical base64 ("EY==")
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "malformed verifier key: the key is not base64",
        ),
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEQ==",
            "malformed verifier key: an Ed25519 key is 32 bytes",
        ),
        (
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            "malformed verifier key: the key is not base64",
        ),
        (
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy1w==",
            "malformed verifier key: an Ed25519 key is 32 bytes",
        ),
        (
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "unsupported verifier key type 0x65",
        ),
    ],
)
def test_verifier_key_messages(vkey, message):
    assert message_of(parse_verifier_key, vkey) == message


def test_verifier_key_round_trip_and_independent_key_id():
    for seed in (b"\x01" * 32, b"\x02" * 32, bytes(range(32))):
        pk = signer_from_seed(seed).public_key_bytes()
        for name in ("evidence-vault.example", "a", "vault.example/with/path", "ünïcode"):
            vkey = verifier_key(name, pk)
            v = parse_verifier_key(vkey)
            assert v == Verifier.for_key(name, pk)
            assert v.key_string() == vkey
            # the key id recomputed here from the spec's formula, not by the module
            want = hashlib.sha256(name.encode() + b"\n\x01" + pk).digest()[:4]
            assert v.key_id == want
            key64 = base64.b64encode(b"\x01" + pk).decode()
            assert vkey == f"{name}+{want.hex()}+{key64}"


def test_verifier_consistency_is_enforced():
    with pytest.raises(NoteError):
        Verifier("PeterNeumann", bytes.fromhex("00000000"), PETER.public_key)
    with pytest.raises(NoteError):
        Verifier.for_key("Peter Neumann", PETER.public_key)
    with pytest.raises(NoteError):
        Verifier.for_key("PeterNeumann", PETER.public_key[:31])
    with pytest.raises(NoteError):
        key_id("a+b", PETER.public_key)


# --- signing, co-signing, round trips --------------------------------------------------

A = signer_from_seed(hashlib.sha256(b"key a").digest())
B = signer_from_seed(hashlib.sha256(b"key b").digest())
VA = Verifier.for_key("vault.example", A.public_key_bytes())
VB = Verifier.for_key("vault.example", B.public_key_bytes())


def test_sign_open_round_trip():
    for body in (b"x\n", b"a\n\nb\n", b"\n", b"ends with blank\n\n", "ünïcode ✓\n".encode()):
        note = sign_note(body, "vault.example", A)
        assert open_note(note, [VA]) == (body, [VA])
        assert message_of(open_note, note, [VB]) == "no signature by a known key"


def test_sign_refuses_bad_text_and_names():
    assert message_of(sign_note, b"no newline", "vault.example", A) == (
        "malformed note text: it must end with a newline"
    )
    assert message_of(sign_note, b"", "vault.example", A) == (
        "malformed note text: it must end with a newline"
    )
    assert message_of(sign_note, b"tab\there\n", "vault.example", A) == (
        "malformed note text: control character other than newline"
    )
    assert message_of(sign_note, b"\xc3\n", "vault.example", A) == (
        "malformed note text: not valid UTF-8"
    )
    for name in ("", "a b", "a+b", "tab\t", "nbsp\u00a0"):
        with pytest.raises(NoteError):
            sign_note(b"x\n", name, A)


def test_signer_returning_garbage_is_caught():
    class Broken:
        def public_key_bytes(self):
            return A.public_key_bytes()

        def sign(self, message):
            return bytes(64)

    assert message_of(sign_note, b"x\n", "vault.example", Broken()) == (
        "the signer for vault.example produced an invalid signature"
    )


def test_cosigned_note_verified_by_either_key():
    note = add_signature(sign_note(b"head\n", "vault.example", A), "vault.example", B)
    assert open_note(note, [VA]) == (b"head\n", [VA])
    assert open_note(note, [VB]) == (b"head\n", [VB])
    assert open_note(note, [VB, VA]) == (b"head\n", [VA, VB])
    # re-signing with a key that already signed replaces its line, keeping the others
    again = add_signature(note, "vault.example", A)
    assert again.count("— ".encode()) == 2
    assert again.index(b"\n\n") == note.index(b"\n\n")
    assert open_note(again, [VA, VB]) == (b"head\n", [VB, VA])
    # co-signing the published note keeps Peter's signature verifiable
    cosigned = add_signature(PUB["signed_note"].encode(), "vault.example", A)
    assert open_note(cosigned, [PETER, VA]) == (TEXT, [PETER, VA])
    with pytest.raises(NoteError):
        add_signature(TEXT, "vault.example", A)


def test_tampered_cosigned_note_fails_for_every_key():
    note = add_signature(sign_note(b"head\n", "vault.example", A), "vault.example", B)
    bad = note.replace(b"head", b"heap")
    for known in ([VA], [VB], [VA, VB]):
        with pytest.raises(NoteError):
            open_note(bad, known)


# --- checkpoints -----------------------------------------------------------------------

ROOT = bytes(range(32))


def test_checkpoint_body_and_parse():
    cp = Checkpoint("vault.example/telco-de", 20852163, ROOT)
    body = cp.body()
    assert body == (b"vault.example/telco-de\n20852163\n" + base64.b64encode(ROOT) + b"\n")
    assert Checkpoint.parse_body(body) == cp
    ext = Checkpoint("o", 0, EMPTY_ROOT, ("ext one", "ext two"))
    assert ext.body().endswith(b"\next one\next two\n")
    assert Checkpoint.parse_body(ext.body()) == ext


def test_spec_example_checkpoint_body_parses():
    # the example at the top of c2sp.org/tlog-checkpoint (its key is not published)
    body = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.parse_body(body)
    assert (cp.origin, cp.size, len(cp.root), cp.extensions) == (
        "example.com/behind-the-sofa",
        20852163,
        32,
        (),
    )
    assert cp.body() == body


R64 = base64.b64encode(ROOT)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"o\n1\n" + R64, "malformed checkpoint: it must end with a newline"),
        (b"o\n1\n", "malformed checkpoint: it needs an origin, a tree size and a root"),
        (b"\n1\n" + R64 + b"\n", "malformed checkpoint: line 1 is empty"),
        (b"o\n1\n" + R64 + b"\n\n", "malformed checkpoint: line 4 is empty"),
        (
            b"o\n01\n" + R64 + b"\n",
            "malformed checkpoint: the tree size is not a decimal number without leading zeros",
        ),
        (
            b"o\n-1\n" + R64 + b"\n",
            "malformed checkpoint: the tree size is not a decimal number without leading zeros",
        ),
        (
            b"o\n+1\n" + R64 + b"\n",
            "malformed checkpoint: the tree size is not a decimal number without leading zeros",
        ),
        (
            b"o\n 1\n" + R64 + b"\n",
            "malformed checkpoint: the tree size is not a decimal number without leading zeros",
        ),
        (
            "o\n١\n".encode() + R64 + b"\n",
            "malformed checkpoint: the tree size is not a decimal number without leading zeros",
        ),
        (
            b"o\n9223372036854775808\n" + R64 + b"\n",
            "malformed checkpoint: the tree size is out of range",
        ),
        (
            b"o\n1\n" + base64.b64encode(ROOT[:31]) + b"\n",
            "malformed checkpoint: the root hash is not base64 of 32 bytes",
        ),
        (
            b"o\n1\n" + R64.rstrip(b"=") + b"\n",
            "malformed checkpoint: the root hash is not base64 of 32 bytes",
        ),
        (
            b"o\n1\n" + base64.urlsafe_b64encode(b"\xff" * 32) + b"\n",
            "malformed checkpoint: the root hash is not base64 of 32 bytes",
        ),
        (b"o\n1\r\n" + R64 + b"\n", "malformed checkpoint: control character other than newline"),
        (b"o\xff\n1\n" + R64 + b"\n", "malformed checkpoint: not valid UTF-8"),
    ],
    ids=range(15),
)
def test_checkpoint_parse_is_strict(body, message):
    assert message_of(Checkpoint.parse_body, body) == message


def test_checkpoint_construction_is_checked():
    for args in [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        ("o", -1, ROOT),
        ("o", 1, ROOT[:31]),
        ("o", True, ROOT),
        ("o", 1, ROOT, ("",)),
        ("o", 1, ROOT, ("a\nb",)),
    ]:
        with pytest.raises(NoteError):
            Checkpoint(*args)


def test_open_checkpoint():
    cp = Checkpoint("vault.example/telco-de", 3, ROOT)
    note = sign_note(cp.body(), "vault.example", A)
    assert open_checkpoint(note, [VA]) == (cp, [VA])
    assert open_checkpoint(note, [VA], origin="vault.example/telco-de") == (cp, [VA])
    with pytest.raises(NoteError, match=r"not 'vault\.example/other'"):
        open_checkpoint(note, [VA], origin="vault.example/other")
    # a validly signed note that is not a checkpoint
    with pytest.raises(NoteError, match="malformed checkpoint"):
        open_checkpoint(sign_note(b"hello\n", "vault.example", A), [VA])


# --- the vault's own vector ------------------------------------------------------------


def test_vault_vector_reproduces():
    signer = signer_from_seed(bytes.fromhex(OURS["seed"]))
    pk = signer.public_key_bytes()
    assert pk.hex() == OURS["public_key"]
    assert verifier_key(OURS["name"], pk) == OURS["verifier_key"]
    assert key_id(OURS["name"], pk).hex() == OURS["key_id"]
    ledger = json.loads((Path(__file__).parent / "vectors" / "ledger.json").read_text())
    leaves = [bytes.fromhex(e["leaf_hash"]) for e in ledger["entries"]]
    tree_root = root(MemoryNodes(leaves), len(leaves))
    assert tree_root == parent(*leaves) == bytes.fromhex(OURS["root"])
    cp = Checkpoint(OURS["origin"], OURS["size"], tree_root)
    assert cp.body() == OURS["body"].encode()
    note = sign_note(cp.body(), OURS["name"], signer)
    assert note == OURS["note"].encode()
    empty = Checkpoint(OURS["origin"], 0, EMPTY_ROOT)
    assert sign_note(empty.body(), OURS["name"], signer) == OURS["empty_note"].encode()
    second = signer_from_seed(bytes.fromhex(OURS["second_seed"]))
    assert verifier_key(OURS["name"], second.public_key_bytes()) == OURS["second_verifier_key"]
    assert add_signature(note, OURS["name"], second) == OURS["cosigned_note"].encode()


def test_vault_vector_checks_independently():
    """The vector, checked with the spec's formulas and `cryptography` directly."""
    note = OURS["note"].encode()
    body, _, sig_line = note.rpartition(b"\n\n")
    body += b"\n"
    assert body == OURS["body"].encode()
    dash_name, b64 = sig_line.rstrip(b"\n").decode().rsplit(" ", 1)
    assert dash_name == "— " + OURS["name"]
    raw = base64.b64decode(b64)
    pk = bytes.fromhex(OURS["public_key"])
    assert raw[:4] == hashlib.sha256(OURS["name"].encode() + b"\n\x01" + pk).digest()[:4]
    Ed25519PublicKey.from_public_bytes(pk).verify(raw[4:], body)  # raises if invalid
    origin, size, root64 = body.decode().splitlines()
    assert (origin, int(size), base64.b64decode(root64).hex()) == (
        OURS["origin"],
        OURS["size"],
        OURS["root"],
    )
    v1 = parse_verifier_key(OURS["verifier_key"])
    v2 = parse_verifier_key(OURS["second_verifier_key"])
    cosigned = OURS["cosigned_note"].encode()
    assert open_checkpoint(cosigned, [v1], origin=OURS["origin"])[1] == [v1]
    assert open_checkpoint(cosigned, [v2], origin=OURS["origin"])[1] == [v2]
    assert (
        open_note(OURS["empty_note"].encode(), [v1])[0]
        == (
            f"{OURS['origin']}\n0\n{base64.b64encode(hashlib.sha256(b'').digest()).decode()}\n"
        ).encode()
    )
