"""Recoverable anonymization: keys, the sealed sidecar, and `dp-pose recover` refusing every kind of fault.

The round trips run the embedded default model (torch-free) on the shipped clip
and photos; the reference for "exact" is the decoded input itself.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _blocked_imports import TRAINING_STACK, blocking_prelude  # noqa: E402
from _infer_fixtures import CLIP, COCO_DIR  # noqa: E402

from dp_pose_zoo.video import recovery  # noqa: E402
from dp_pose_zoo.cli import main  # noqa: E402

FRAMES = 6


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _decode(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _infer(run: Path, key: Path, *extra: str, source: Path = CLIP, mode: str = "blur") -> None:
    argv = ["infer", str(source), "--anonymize", mode, "--recoverable", str(key), "--out", str(run),
            "--threads", "1", "-q", *extra]
    if source == CLIP:
        argv += ["--max-frames", str(FRAMES)]
    assert main(argv) == 0


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    for name in ("right", "wrong"):
        recovery.generate_key(folder / name)
    return {name: folder / name for name in ("right", "wrong")}


@pytest.fixture(scope="module")
def lossless_run(tmp_path_factory, keys) -> Path:
    run = tmp_path_factory.mktemp("lossless") / "run"
    _infer(run, keys["right"], "--codec", "ffv1", mode="avatar")
    return run


# ----------------------------------------------------------------------------- keys
def test_keygen_writes_a_private_random_key_and_never_overwrites(tmp_path, capsys):
    old = os.umask(0)  # a permissive umask must not widen the key's mode
    try:
        code, out, _ = _cli(["keygen", str(tmp_path / "a.key")], capsys)
    finally:
        os.umask(old)
    key = (tmp_path / "a.key").read_bytes()
    assert code == 0 and len(key) == recovery.KEY_BYTES
    assert stat.S_IMODE((tmp_path / "a.key").stat().st_mode) == 0o600
    assert recovery.key_id(key) in out and key.hex() not in out and key.hex()[:8] not in out
    recovery.generate_key(tmp_path / "b.key")
    assert (tmp_path / "b.key").read_bytes() != key

    code, _, err = _cli(["keygen", str(tmp_path / "a.key")], capsys)
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "a.key").read_bytes() == key
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert _cli(["keygen", str(tmp_path / "dangling")], capsys)[0] == 2
    assert not (tmp_path / "nowhere").exists()


def test_a_file_that_is_not_a_key_is_refused(tmp_path, capsys):
    (tmp_path / "short.key").write_bytes(b"0" * 16)
    code, _, err = _cli(["infer", str(CLIP), "--anonymize", "blur", "--recoverable", str(tmp_path / "short.key"),
                         "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "not a dp-pose key" in err and not (tmp_path / "run").exists()
    recovery.generate_key(tmp_path / "k")
    code, _, err = _cli(["infer", str(CLIP), "--recoverable", str(tmp_path / "k"), "--out", str(tmp_path / "run")],
                        capsys)
    assert code == 2 and "needs --anonymize" in err and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- what a frame changed
def test_changed_boxes_cover_every_changed_pixel():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
        b = a.copy()
        for _ in range(int(rng.integers(0, 6))):
            x, y = int(rng.integers(0, 131)), int(rng.integers(0, 97))
            b[y:y + int(rng.integers(1, 30)), x:x + int(rng.integers(1, 40))] ^= 0x55
        covered = np.zeros(a.shape[:2], bool)
        for x1, y1, x2, y2 in recovery.changed_boxes(a, b):
            assert 0 <= x1 < x2 <= 131 and 0 <= y1 < y2 <= 97
            covered[y1:y2, x1:x2] = True
        assert not ((a != b).any(axis=2) & ~covered).any()
    assert recovery.changed_boxes(a, a) == []


# ----------------------------------------------------------------------------- round trips
def test_lossless_round_trip_is_pixel_exact(lossless_run, keys, capsys):
    originals = _decode(CLIP)[:FRAMES]
    written = _decode(lossless_run / "vtest-clip.mkv")
    assert len(written) == FRAMES and not all(np.array_equal(a, b) for a, b in zip(originals, written))
    code, out, _ = _cli(["recover", str(lossless_run / "vtest-clip.mkv"), "--key", str(keys["right"]),
                         "--out", str(lossless_run.parent / "back")], capsys)
    assert code == 0 and f"{FRAMES} frames recovered" in out
    recovered = _decode(lossless_run.parent / "back" / "vtest-clip.mkv")
    assert len(recovered) == FRAMES and all(np.array_equal(a, b) for a, b in zip(originals, recovered))

    meta = json.loads((lossless_run / "keypoints.json").read_text())
    assert meta["recovery"]["sidecar"] == "vtest-clip.mkv.recovery" and meta["recovery"]["lossless"] is True
    assert meta["settings"]["recoverable"] is True and meta["settings"]["codec"] == "ffv1"
    assert "right" not in json.dumps(meta["settings"])  # the key's path is not recorded, let alone the key
    hidden = [region for frame in meta["frames"] for region in frame["hidden"]]
    assert hidden and all(r["how"] == "avatar" for r in hidden)
    assert all(len(f["hidden"]) == len(f["people"]) for f in meta["frames"])


def test_the_sidecar_holds_no_plaintext_pixels(lossless_run):
    data = (lossless_run / "vtest-clip.mkv.recovery").read_bytes()
    original = _decode(CLIP)[0]
    meta = json.loads((lossless_run / "keypoints.json").read_text())
    assert b"\x89PNG" not in data and b"IHDR" not in data and b'"boxes"' not in data
    for region in meta["frames"][0]["hidden"]:
        x1, y1, x2, y2 = region["box"]
        for row in range(y1, y2, 7):
            assert original[row, x1:x2].tobytes()[:48] not in data
        ok, png = cv2.imencode(".png", original[y1:y2, x1:x2])
        assert png.tobytes()[16:64] not in data
    # What the header says in the clear: the format, the output's name, a random id, the key's id.
    header = json.loads(data[len(recovery.MAGIC) + 4:len(recovery.MAGIC) + 4 + int.from_bytes(data[8:12], "big")])
    assert set(header) == {"format", "version", "cipher", "output", "output_id", "lossless", "key_id"}


def test_lossy_output_gives_back_the_changed_pixels_exactly(tmp_path, keys, capsys):
    run = tmp_path / "run"
    _infer(run, keys["right"], mode="pixelate")  # default codec: mp4v
    assert _cli(["recover", str(run), "--key", str(keys["right"])], capsys)[0] == 0
    recovered = _decode(run / "recovered" / "vtest-clip.mkv")
    originals = _decode(CLIP)[:FRAMES]
    meta = json.loads((run / "keypoints.json").read_text())
    checked = 0
    for frame, before, after in zip(meta["frames"], originals, recovered):
        for region in frame["hidden"]:
            x1, y1, x2, y2 = region["box"]
            assert np.array_equal(before[y1:y2, x1:x2], after[y1:y2, x1:x2])
            checked += 1
    assert len(recovered) == FRAMES and checked > 0
    # Frames out of order are noticed by their sealed thumbnails, through a second round of codec noise.
    written = _decode(run / "vtest-clip.mp4")
    writer = cv2.VideoWriter(str(run / "swapped.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0,
                             (written[0].shape[1], written[0].shape[0]))
    for i in [0, 2, 1, *range(3, FRAMES)]:
        writer.write(written[i])
    writer.release()
    shutil.copyfile(run / "vtest-clip.mp4.recovery", run / "swapped.mp4.recovery")
    assert "does not look like the frame" in _refused(run, keys["right"], capsys, video="swapped.mp4")


def test_png_images_round_trip_exactly(tmp_path, keys, capsys):
    run = tmp_path / "run"
    _infer(run, keys["right"], "--codec", "png", "--boxes", "full", source=COCO_DIR, mode="skeleton")
    assert (run / "images.recovery").is_file()
    assert _cli(["recover", str(run), "--key", str(keys["right"]), "--out", str(tmp_path / "back")], capsys)[0] == 0
    photos = sorted(COCO_DIR.glob("*.jpg"))
    for photo in photos:
        assert np.array_equal(cv2.imread(str(photo)), cv2.imread(str(tmp_path / "back" / f"{photo.stem}.png")))
    # An image swapped for another is noticed (its digest is sealed).
    shutil.copyfile(run / f"{photos[0].stem}.png", run / f"{photos[1].stem}.png")
    code, _, err = _cli(["recover", str(run), "--key", str(keys["right"]), "--out", str(tmp_path / "b2")], capsys)
    assert code == 2 and "not the frame the sidecar sealed" in err and not (tmp_path / "b2").exists()


def test_codec_must_fit_the_source(tmp_path, capsys):
    code, _, err = _cli(["infer", str(CLIP), "--codec", "png", "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "mp4v or ffv1" in err and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- refusals
def _refused(run: Path, key: Path, capsys, *, video: str = "vtest-clip.mkv") -> str:
    out = run.parent / "refused-out"
    code, stdout, err = _cli(["recover", str(run / video), "--key", str(key), "--out", str(out)], capsys)
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not list(run.parent.glob(".refused-out*"))  # nothing written
    return err


@pytest.fixture
def copy_of(lossless_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(lossless_run, run, ignore=shutil.ignore_patterns("recovered"))
    return run


def test_wrong_key_is_refused(copy_of, keys, capsys):
    assert "wrong key" in _refused(copy_of, keys["wrong"], capsys)


@pytest.mark.parametrize("where", [0.3, 0.6, 0.95, -3])
def test_a_tampered_byte_is_refused(copy_of, keys, capsys, where):
    sidecar = copy_of / "vtest-clip.mkv.recovery"
    data = bytearray(sidecar.read_bytes())
    data[int(len(data) * where) if where > 0 else where] ^= 0x01
    sidecar.write_bytes(bytes(data))
    assert "recovery" in _refused(copy_of, keys["right"], capsys)


def test_a_tampered_header_is_refused(copy_of, keys, capsys):
    sidecar = copy_of / "vtest-clip.mkv.recovery"
    data = sidecar.read_bytes()
    at = data.index(b'"output_id": "') + len(b'"output_id": "')
    forged = data[:at] + (b"0" if data[at:at + 1] != b"0" else b"1") + data[at + 1:]  # still valid JSON
    sidecar.write_bytes(forged)
    assert "another run" in _refused(copy_of, keys["right"], capsys)  # its id no longer matches keypoints.json
    (copy_of / "keypoints.json").unlink()
    assert "fails authentication" in _refused(copy_of, keys["right"], capsys)  # and the header is sealed in


@pytest.mark.parametrize("cut", [1, 100, "end"])
def test_a_truncated_sidecar_is_refused(copy_of, keys, capsys, cut):
    sidecar = copy_of / "vtest-clip.mkv.recovery"
    data = sidecar.read_bytes()
    if cut == "end":  # exactly the END record dropped: every remaining record is intact
        last = len(data)
        pos = len(recovery.MAGIC) + 4 + int.from_bytes(data[8:12], "big")
        while pos < last:
            start, pos = pos, pos + 4 + int.from_bytes(data[pos:pos + 4], "big")
        data = data[:start]
    else:
        data = data[:-cut]
    sidecar.write_bytes(data)
    assert "truncated" in _refused(copy_of, keys["right"], capsys)


def test_another_runs_sidecar_is_refused(copy_of, keys, tmp_path, capsys):
    other = tmp_path / "other"
    _infer(other, keys["right"], "--codec", "ffv1", mode="blur")  # the same clip, the same key: still refused
    capsys.readouterr()
    shutil.copyfile(other / "vtest-clip.mkv.recovery", copy_of / "vtest-clip.mkv.recovery")
    assert "another run" in _refused(copy_of, keys["right"], capsys)
    (copy_of / "keypoints.json").unlink()  # without the run's JSON the sealed digests of its frames disagree
    assert "not the frame the sidecar sealed" in _refused(copy_of, keys["right"], capsys)


def test_frames_out_of_order_or_missing_are_refused(copy_of, keys, capsys):
    frames = _decode(copy_of / "vtest-clip.mkv")
    for name, order in (("swapped.mkv", [1, 0, *range(2, FRAMES)]), ("short.mkv", list(range(FRAMES - 1)))):
        writer = cv2.VideoWriter(str(copy_of / name), cv2.VideoWriter_fourcc(*"FFV1"), 10.0,
                                 (frames[0].shape[1], frames[0].shape[0]))
        for i in order:
            writer.write(frames[i])
        writer.release()
        shutil.copyfile(copy_of / "vtest-clip.mkv.recovery", copy_of / f"{name}.recovery")
        err = _refused(copy_of, keys["right"], capsys, video=name)
        assert ("not the frame the sidecar sealed" if name == "swapped.mkv" else "frames are missing") in err


# ----------------------------------------------------------------------------- torch-free
def test_keygen_infer_recoverable_and_recover_need_no_torch(tmp_path):
    child = f"""
import sys
from dp_pose_zoo.cli import main
run = {str(tmp_path / 'run')!r}
assert main(["keygen", {str(tmp_path / 'k')!r}]) == 0
assert main(["infer", {str(CLIP)!r}, "--anonymize", "avatar", "--recoverable", {str(tmp_path / 'k')!r},
             "--codec", "ffv1", "--max-frames", "2", "--out", run, "--threads", "1", "-q"]) == 0
assert main(["recover", run, "--key", {str(tmp_path / 'k')!r}]) == 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print("HEAVY", heavy)
"""
    proc = subprocess.run([sys.executable, "-c", blocking_prelude(TRAINING_STACK + ("gradio",)) + child],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY []" in proc.stdout
    assert (tmp_path / "run" / "recovered" / "vtest-clip.mkv").is_file()
