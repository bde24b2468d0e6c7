"""Generated and mutated files for every file reader, read under a 200 MB memory cap.

Each example starts from a valid file (a BVH rig, an ASF skeleton with an AMC
motion, an npz of numeric and pickled members, a 3DPW-like pickle), applies a
few mutations drawn by hypothesis (tokens replaced by hostile values, lines
deleted or repeated, bytes flipped, headers that declare huge shapes, opcodes
that declare huge lengths) and reads it in the capped worker of
``tests/capped.py``. Every file must end in a result or in a ``ValueError``
(the project's ``UnsafePickleError`` included) whose message names the file;
a ``MemoryError`` (more than 200 MB), any other exception type or a message
without the file fails. Work is bounded by construction: the files are small,
and the readers' caps bound what a file can declare.
"""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mocap_files import (
    amc_text,
    asf_bone,
    asf_text,
    bvh_text,
    cmu_like_bones,
    humanoid_bvh_joints,
    random_frames,
)

FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Tokens that have broken readers: unicode digits, huge counts, non-finite
# numbers, structure keywords out of place, 5,000-digit integers.
HOSTILE = ["0", "-1", "1e308", "1e999", "nan", "-inf", "\u00b2", "\u0663", "9" * 19, "9" * 5000,
           "{", "}", "(", ")", "ROOT", "JOINT", "End", "Site", "CHANNELS", "OFFSET", "MOTION",
           "Frames:", "begin", "end", ":bonedata", ":hierarchy", "root", "x", "", "3"]  # fmt: skip


def _judge(outcome: tuple[str, str], *names: str) -> None:
    kind, message = outcome
    assert kind in ("ok", "ValueError", "UnsafePickleError"), f"{kind}: {message}"
    assert kind == "ok" or any(n in message for n in names), f"no file named: {message}"
    # a size is refused by a check, never by running out of memory first
    assert "memory" not in message.lower(), message


# Lines that hold counts, sizes and orders: mutated more often than the rest.
KEYWORDS = ("Frames:", "Frame", "CHANNELS", "OFFSET", "length", "direction", "axis", "dof",
            "order", "limits", "name")  # fmt: skip


# One mutation: (action, which line as a fraction, prefer a keyword line, which token
# as a fraction, the hostile token, how often a line is repeated).
MUTATIONS = st.lists(
    st.tuples(st.sampled_from(["token", "token", "delete", "repeat", "insert", "cut"]),
              st.floats(0, 1), st.booleans(), st.floats(0, 1), st.sampled_from(HOSTILE),
              st.sampled_from([2, 100, 3000])),
    max_size=3,  # none: the valid (possibly huge) file itself
)  # fmt: skip


def mutate(text: str, mutations: list[tuple]) -> str:
    lines = text.split("\n")
    for action, where, keyed, which, token, repeat in mutations:
        keys = [k for k, ln in enumerate(lines) if ln.split()[:1] and (
            ln.split()[0] in KEYWORDS or ln.strip().isdigit())]  # fmt: skip
        pool = keys if keyed and keys else range(len(lines))
        i = pool[min(int(where * len(pool)), len(pool) - 1)]
        toks = lines[i].split()
        if action == "token" and toks:
            toks[min(int(which * len(toks)), len(toks) - 1)] = token
            lines[i] = " ".join(toks)
        elif action == "delete":
            del lines[i]
        elif action == "repeat":  # e.g. thousands of motion lines or joints
            lines[i:i] = [lines[i]] * repeat
        elif action == "insert":
            lines.insert(i, token)
        else:
            lines = lines[:i]
        lines = lines or [""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.data())
def test_bvh_reader(folder, capped, data):
    joints = humanoid_bvh_joints({}, scale=100.0)
    # channel-less joints cost a few bytes each and frames one byte per channel:
    # 3,000 x 1,500 declares 4.5 million joint positions in 150 KB
    joints += [{"name": f"x{i}", "parent": 0, "offset": np.ones(3), "channels": [], "end": None}
               for i in range(data.draw(st.sampled_from([0, 20, 3000])))]  # fmt: skip
    t = data.draw(st.sampled_from([1, 2, 5, 1500]))
    frames = random_frames(joints, t, np.random.default_rng(0), 90.0)
    f = folder / "fuzz.bvh"
    f.write_text(mutate(bvh_text(joints, frames), data.draw(MUTATIONS)), encoding="utf-8")
    unit = data.draw(st.sampled_from(["auto", "cm"]))
    _judge(capped.call("unihpr.data.read_bvh", f, unit=unit), f.name)


@FUZZ
@given(data=st.data())
def test_asf_amc_readers(folder, capped, data):
    bones = cmu_like_bones() + [  # dof-less bones: no AMC values, yet joints
        asf_bone(f"x{i}", "root", (0, 1, 0), 1.0, dof=())
        for i in range(data.draw(st.sampled_from([0, 20, 3000])))
    ]
    t = data.draw(st.sampled_from([1, 2, 4, 1500]))
    values = {b["name"]: np.zeros((t, len(b["dof"]))) for b in bones if b["dof"]}
    asf, amc = asf_text(bones, length_factor=0.45), amc_text(np.zeros((t, 6)), values)
    if data.draw(st.booleans()):
        asf = mutate(asf, data.draw(MUTATIONS))
    else:
        amc = mutate(amc, data.draw(MUTATIONS))
    (folder / "fuzz.asf").write_text(asf, encoding="utf-8")
    (folder / "fuzz.amc").write_text(amc, encoding="utf-8")
    outcome = capped.call("unihpr.data.read_amc", folder / "fuzz.amc", folder / "fuzz.asf")
    _judge(outcome, "fuzz.asf", "fuzz.amc")  # a motion too long for its skeleton names the AMC


def _npy_header(shape: tuple, descr: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


@FUZZ
@given(data=st.data())
def test_npz_reader(folder, capped, data):
    f = folder / "fuzz.npz"
    members = {
        "num": np.arange(data.draw(st.integers(0, 2000)), dtype=np.float32),
        "obj": np.array({"S1": {"Walking": np.ones((3, 17, 2))}}, dtype=object),
    }
    (np.savez_compressed if data.draw(st.booleans()) else np.savez)(f, **members)
    blob = bytearray(f.read_bytes())
    fault = data.draw(st.sampled_from(["none", "flip", "cut", "header", "pickle"]))
    if fault == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
        f.write_bytes(bytes(blob))
    elif fault == "cut":
        f.write_bytes(bytes(blob[: data.draw(st.integers(0, len(blob)))]))
    else:
        # a member whose header declares any shape (up to 2**62 elements) over a few bytes
        shape = tuple(
            data.draw(st.lists(st.sampled_from([0, 1, 3, 10**6, 2**31, 2**62]), max_size=3))
        )
        descr = data.draw(st.sampled_from(["<f8", "|u1", "|V0", "|O", "<U100000"]))
        body = data.draw(st.binary(max_size=64)) if fault == "header" else _pickle_bomb(data)
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("num.npy", _npy_header(shape, descr) + body)
            z.writestr("obj.npy", _npy_header((), "|O") + _pickle_bomb(data))
    key = data.draw(st.sampled_from(["num", "obj"]))
    _judge(capped.call("unihpr.data._safe_pickle.read_npz", f, key), f.name)


# Opcodes that declare lengths, shapes or calls, for the pickle mutations.
_OPCODES = [
    b"\x8e" + (1 << 40).to_bytes(8, "little"),  # BINBYTES8
    b"\x96" + (1 << 30).to_bytes(8, "little"),  # BYTEARRAY8
    b"\x8d" + (1 << 33).to_bytes(8, "little"),  # BINUNICODE8
    b"\x95" + (1 << 40).to_bytes(8, "little"),  # FRAME
    b"\x8b" + (1 << 30).to_bytes(4, "little"),  # LONG4
    b"c__builtin__\nbytearray\n", b"cnumpy\nndarray\n", b"cnumpy\ndtype\n",
    b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\nscalar\n",
    b"cnumpy._core.numeric\n_frombuffer\n", b"J\x00\x00\x00@", b"\x8a\x08" + (1 << 60).to_bytes(8, "little"),
    b"(", b"t", b"R", b"b", b"]", b"}", b"s", b"e", b"\x85", b"\x86", b"h\x00", b"2", b".",
]  # fmt: skip


def _pickle_bomb(data) -> bytes:
    """A pickle of 3DPW-like values with opcodes spliced in."""
    value = {
        "sequence": "s",
        "jointPositions": [np.zeros((2, 72))],
        "cam_poses": np.zeros((2, 4, 4)),
    }
    blob = bytearray(pickle.dumps(value, protocol=data.draw(st.sampled_from([2, 4, 5]))))
    for _ in range(data.draw(st.integers(0, 6))):
        at = data.draw(st.integers(0, len(blob)))
        blob[at:at] = data.draw(st.sampled_from(_OPCODES))
    return bytes(blob)


@FUZZ
@given(data=st.data())
def test_pickle_reader(folder, capped, data):
    f = folder / "fuzz.pkl"
    f.write_bytes(_pickle_bomb(data))
    _judge(capped.call("unihpr.data.load_3dpw_sequence", f), f.name)
