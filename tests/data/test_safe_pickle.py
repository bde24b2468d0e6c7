"""The restricted unpickler and npz reader behind every dataset loader."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest
from payloads import CreatesFile, assert_payload_is_live

from unihpr.data._safe_pickle import UnsafePickleError, read_npz, restricted_load


def _load(obj, protocol=2):
    return restricted_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)), "mem.pkl")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_and_builtin_values_round_trip(protocol):
    value = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "f": np.asfortranarray(np.ones((2, 3))),
        "view": np.arange(10)[::3],
        "obj": np.array([{"k": np.zeros(2)}, None], dtype=object),
        "scalars": [np.float64(1.5), np.int32(-3), np.bool_(True)],
        "py": (1, 2.5, "s", b"b", None, True, {1, 2}, frozenset({3}), complex(1, 2)),
        "rec": np.zeros(2, dtype=[("x", "<f4"), ("y", "<i8")]),
    }
    out = _load(value, protocol)
    assert out.keys() == value.keys()
    for key in ("a", "f", "view", "rec"):
        np.testing.assert_array_equal(out[key], value[key])
        assert out[key].dtype == value[key].dtype
    assert out["f"].flags.f_contiguous
    assert out["py"] == value["py"] and out["scalars"] == value["scalars"]
    np.testing.assert_array_equal(out["obj"][0]["k"], np.zeros(2))


def test_numpy1_module_names_load():
    # Files written by numpy 1 (VideoPose3D's, 3DPW's) name numpy.core.multiarray.
    blob = pickle.dumps({"x": np.arange(3.0), "s": np.float64(2.0)}, protocol=2)
    old = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != blob
    out = restricted_load(io.BytesIO(old), "old.pkl")
    np.testing.assert_array_equal(out["x"], np.arange(3.0))
    assert out["s"] == 2.0


@pytest.mark.parametrize(
    "blob",
    [
        b"cos\nsystem\n(S'touch /tmp/never'\ntR.",
        b"cposix\nsystem\n(S'touch /tmp/never'\ntR.",
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"c__builtin__\ngetattr\n(S'x'\nS'y'\ntR.",
        b"cnumpy\nload\n(S'x'\ntR.",
        b"cnumpy.core.multiarray\n_reconstruct_evil\n.",
        b"ccopy_reg\n_reconstructor\n.",
        b"c_codecs\ndecode\n.",
    ],
)
def test_other_globals_are_refused_before_any_call(blob):
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl: refusing to unpickle"):
        restricted_load(io.BytesIO(blob), "evil.pkl")


def test_codecs_encode_only_latin1():
    # _codecs.encode(text, "latin1") is how protocol 2 spells bytes; other codecs are refused.
    assert _load(b"\x00\xff") == b"\x00\xff"
    with pytest.raises(UnsafePickleError, match="latin1"):
        restricted_load(io.BytesIO(b"c_codecs\nencode\n(S'x'\nS'rot13'\ntR."), "x.pkl")


def test_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    assert_payload_is_live(marker)
    with pytest.raises(UnsafePickleError, match=r"refusing to unpickle (io|builtins)\.open"):
        _load({"deep": [{"x": (CreatesFile(marker),)}]})
    assert not marker.exists()


@pytest.mark.parametrize("blob", [b"", b"\x80\x02}q\x00(X", b"garbage", b"\x80\x05\x95"])
def test_truncated_or_garbled_streams_name_the_source(blob):
    with pytest.raises(ValueError, match=r"src\.pkl: not a readable pickle"):
        restricted_load(io.BytesIO(blob), "src.pkl")


def test_read_npz_formats(tmp_path):
    f = tmp_path / "ok.npz"
    np.savez_compressed(f, num=np.arange(4), obj=np.array({"a": np.ones(2)}, dtype=object))
    np.testing.assert_array_equal(read_npz(f, "num"), np.arange(4))
    assert read_npz(f, "obj").item()["a"].tolist() == [1.0, 1.0]
    with pytest.raises(
        ValueError,
        match=r"ok\.npz: missing key 'nope' \(expected a dict\); keys are \['num', 'obj'\]",
    ):
        read_npz(f, "nope", "a dict")
    npy = tmp_path / "plain.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.arange(3))  # an .npy under an .npz name
    with pytest.raises(ValueError, match=r"plain\.npz: not an npz \(zip\) archive"):
        read_npz(npy, "x")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.npz: not an npz"):
        read_npz(empty, "x")
    # a zip whose member is not an .npy, and one cut short
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("x.npy", b"not an npy header")
    with pytest.raises(ValueError, match=r"bad\.npz\['x'\]: not a readable \.npy"):
        read_npz(bad, "x")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(f.read_bytes()[: os.path.getsize(f) // 2])
    with pytest.raises(ValueError, match=r"cut\.npz"):
        read_npz(cut, "num")


def test_read_npz_object_header_must_match_payload(tmp_path):
    # An object .npy whose pickle is not the announced array is refused.
    f = tmp_path / "mismatch.npz"
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|O", "fortran_order": False, "shape": (2,)}
    )
    buf.write(pickle.dumps({"not": "an array"}, protocol=3))
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("k.npy", buf.getvalue())
    with pytest.raises(ValueError, match=r"mismatch\.npz\['k'\].*not the object array"):
        read_npz(f, "k")


# ---------------------------------------------------- declared sizes (issue 22, items 1 and 2)
def _glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _int(n: int) -> bytes:
    return b"\x8a\x08" + n.to_bytes(8, "little")  # LONG1, 8 bytes


_EMPTY_ARRAY = (  # numpy's own start of an array: _reconstruct(ndarray, (0,), b"b")
    _glob("numpy.core.multiarray", "_reconstruct") + b"(" + _glob("numpy", "ndarray")
    + b"(K\x00tC\x01bt" + b"R"
)  # fmt: skip
_O8 = _glob("numpy", "dtype") + b"(X\x02\x00\x00\x00O8K\x00K\x01tR"  # dtype("O8")

# Each stream is a few dozen bytes and declares ~1 GB (or 2**40 bytes) that it does not hold.
SIZE_BOMBS = {
    "bytearray_global": b"\x80\x02" + _glob("__builtin__", "bytearray") + b"J\x00\x00\x00@\x85R.",
    "bytearray8_opcode": b"\x80\x05\x96" + (1 << 30).to_bytes(8, "little") + b".",
    "binbytes8_opcode": b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b"xx.",
    "reconstruct_shape": _glob("numpy.core.multiarray", "_reconstruct") + b"("
    + _glob("numpy", "ndarray") + b"(" + _int(1 << 30) + b"tC\x01btR.",
    "ndarray_called": _glob("numpy", "ndarray") + b"((" + _int(1 << 30) + b"ttR.",
    "object_array_state": _EMPTY_ARRAY + b"(K\x01(" + _int(1 << 27) + b"t" + _O8 + b"\x89]tb.",
    # one 1 MB string latin1-encoded 400 times into a list (a memo ref is 2 bytes of stream)
    "memo_repeats": b"X" + (1 << 20).to_bytes(4, "little") + b"a" * (1 << 20) + b"q\x00(" + (
        _glob("_codecs", "encode") + b"h\x00X\x06\x00\x00\x00latin1\x86R") * 400 + b"l.",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SIZE_BOMBS))
def test_declared_sizes_allocate_nothing(tmp_path, capped, name):
    # A 3DPW sequence file is read with the restricted unpickler; a 29-byte one
    # made it allocate 1 GB. Under a 200 MB cap every bomb is a ValueError naming the file.
    f = tmp_path / "bomb.pkl"
    f.write_bytes(SIZE_BOMBS[name])
    kind, message = capped.call("unihpr.data.load_3dpw_sequence", f)
    assert kind in ("ValueError", "UnsafePickleError"), (kind, message)
    assert "bomb.pkl" in message and "memory" not in message  # refused, not attempted


def test_npz_member_declaring_an_impossible_shape(tmp_path, capped):
    f = tmp_path / "huge.npz"
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**15,)}
    )
    buf.write(b"\x00" * 64)
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("positions_3d.npy", buf.getvalue())
    with pytest.raises(
        ValueError, match=r"huge\.npz\['positions_3d'\].*declares shape \(1000000000000000,\)"
    ):
        read_npz(f, "positions_3d")
    assert capped.call("unihpr.data._safe_pickle.read_npz", f, "positions_3d")[0] == "ValueError"


def _deflated_member(path, descr: str, shape: tuple, body: bytes, repeat: int) -> None:
    """An npz whose one member ``data`` is a header plus ``body`` written ``repeat`` times."""
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z,
        z.open("data.npy", "w", force_zip64=True) as member,
    ):
        np.lib.format.write_array_header_1_0(
            member, {"descr": descr, "fortran_order": False, "shape": shape}
        )
        for _ in range(repeat):
            member.write(body)


def test_npz_zip_bomb_is_refused_before_it_is_decompressed(tmp_path, capped):
    # 256 MB of zeros deflate to 250 KB: read twice, they took 512 MB
    f = tmp_path / "bomb.npz"
    _deflated_member(f, "|u1", (256 << 20,), bytes(1 << 20), 256)
    kind, message = capped.call("unihpr.data._safe_pickle.read_npz", f, "data")
    assert kind == "ValueError" and "bomb.npz['data']" in message and "zip bomb" in message
    # the same bytes inside the pickle of an object array
    blob = pickle.dumps(np.array({"x": np.zeros(1 << 20, np.uint8)}, dtype=object))
    _deflated_member(f, "|O", (), blob + bytes(1 << 20), 256)
    assert capped.call("unihpr.data._safe_pickle.read_npz", f, "data")[0] == "ValueError"


def test_npz_members_are_read_once_and_fortran_order_is_kept(tmp_path, capped):
    # 120 MB read under the 200 MB cap: the member is not buffered a second time
    f = tmp_path / "big.npz"
    np.savez(f, a=np.ones((15_000_000,)), f=np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    assert capped.call("unihpr.data._safe_pickle.read_npz", f, "a") == ("ok", "")
    out = read_npz(f, "f")
    np.testing.assert_array_equal(out, np.arange(6.0).reshape(2, 3))
    assert out.flags.f_contiguous
