"""VOC + SBD download and preparation, against tiny archives served from a loopback server."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from seamlib.data import download as dl
from seamlib.data.download import (
    ChecksumError,
    DownloadError,
    Resource,
    convert_sbd,
    copy_voc_masks,
    extract,
    fetch,
    load_sbd_mat,
    prepare_voc,
)
from seamlib.data.voc import read_list, write_list
from seamlib.formats import load_label_png, save_label_png

VOC_MASKS = {  # ids with a VOC SegmentationClass mask
    "2007_000032": np.array([[0, 1, 1], [255, 15, 0]], dtype=np.uint8),
    "2007_000039": np.array([[20, 20, 0], [0, 255, 3]], dtype=np.uint8),
}
SBD_MASKS = {  # 2007_000039 is in both: the VOC mask must win
    "2008_000002": np.array([[0, 7, 7, 0], [0, 7, 12, 0]], dtype=np.uint8),
    "2007_000039": np.array([[5, 5, 5], [5, 5, 5]], dtype=np.uint8),
}
SBD_SPLITS = {"train": ["2008_000002"], "val": ["2007_000039"]}


# --------------------------------------------------------------------------------------------
# Loopback HTTP server with Range support


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        header = self.headers.get("Range")
        server.requests.append((self.path, header))
        body = server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if header and server.honour_range:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.files, httpd.requests, httpd.honour_range = {}, [], True
    httpd.url = lambda name: f"http://127.0.0.1:{httpd.server_address[1]}/{name}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _serve(server, name: str, body: bytes, md5: str | None = None) -> Resource:
    """Publish ``body`` on the server and describe it as a Resource."""
    server.files[name] = body
    return Resource(name=name, url=server.url(name), md5=md5 or hashlib.md5(body).hexdigest(),
                    filename=name)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.tar"


# --------------------------------------------------------------------------------------------
# Tiny archives that mimic the real layouts


def _tar(src: Path, archive: Path) -> bytes:
    with tarfile.open(archive, "w:gz" if archive.suffix == ".tgz" else "w") as tar:
        for path in sorted(src.iterdir()):
            tar.add(path, arcname=path.name)
    return archive.read_bytes()


def _save_mat(path: Path, segmentation: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"GTcls": {"Segmentation": segmentation,
                                      "Boundaries": np.zeros((1, 1)),
                                      "CategoriesPresent": np.unique(segmentation)}})


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("archives")
    voc = root / "voc_src" / "VOCdevkit" / "VOC2012"
    ids = ["2007_000032", "2007_000039", "2008_000002"]
    rng = np.random.default_rng(0)
    for image_id in ids:
        (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(voc / "JPEGImages" / f"{image_id}.jpg")
    for image_id, mask in VOC_MASKS.items():
        save_label_png(voc / "SegmentationClass" / f"{image_id}.png", mask)
    write_list(voc / "ImageSets" / "Segmentation" / "train.txt", ["2007_000032"])
    write_list(voc / "ImageSets" / "Segmentation" / "val.txt", ["2007_000039"])
    write_list(voc / "ImageSets" / "Segmentation" / "trainval.txt", list(VOC_MASKS))
    sbd = root / "sbd_src" / "benchmark_RELEASE" / "dataset"
    for image_id, mask in SBD_MASKS.items():
        _save_mat(sbd / "cls" / f"{image_id}.mat", mask)
    for split, split_ids in SBD_SPLITS.items():
        (sbd / f"{split}.txt").write_text("".join(f"{i}\n" for i in split_ids))
    return {"voc": _tar(root / "voc_src", root / "VOCtrainval_11-May-2012.tar"),
            "sbd": _tar(root / "sbd_src", root / "benchmark.tgz")}


# --------------------------------------------------------------------------------------------
# fetch


def test_fetch_downloads_and_verifies(server, tmp_path):
    body = bytes(range(256)) * 500
    resource = _serve(server, "data.tar", body)
    path = fetch(resource, tmp_path)
    assert path == tmp_path / "data.tar" and path.read_bytes() == body
    assert not (tmp_path / "data.tar.part").exists()
    assert server.requests == [("/data.tar", None)]


def test_fetch_resumes_partial_file_with_range(server, tmp_path):
    body = bytes(range(256)) * 500
    resource = _serve(server, "data.tar", body)
    (tmp_path / "data.tar.part").write_bytes(body[:40000])
    assert fetch(resource, tmp_path).read_bytes() == body
    assert server.requests == [("/data.tar", "bytes=40000-")]


def test_fetch_restarts_when_server_ignores_range(server, tmp_path):
    body = bytes(range(256)) * 500
    resource = _serve(server, "data.tar", body)
    server.honour_range = False
    (tmp_path / "data.tar.part").write_bytes(b"garbage that is not a prefix")
    assert fetch(resource, tmp_path).read_bytes() == body
    assert server.requests == [("/data.tar", "bytes=28-")]


def test_fetch_accepts_complete_part_file_on_416(server, tmp_path):
    body = b"complete archive"
    resource = _serve(server, "data.tar", body)
    (tmp_path / "data.tar.part").write_bytes(body)
    assert fetch(resource, tmp_path).read_bytes() == body


def test_fetch_md5_mismatch_keeps_no_file(server, tmp_path):
    resource = _serve(server, "data.tar", b"some bytes", md5="0" * 32)
    with pytest.raises(ChecksumError) as info:
        fetch(resource, tmp_path)
    message = str(info.value)
    assert "data.tar" in message and "0" * 32 in message
    assert hashlib.md5(b"some bytes").hexdigest() in message
    assert not (tmp_path / "data.tar").exists() and not (tmp_path / "data.tar.part").exists()


def test_fetch_unreachable_fails_fast_naming_url_and_manual_path(tmp_path):
    url = _closed_port_url()
    resource = Resource(name="x", url=url, md5="0" * 32, filename="file.tar")
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch(resource, tmp_path / "downloads", timeout=5)
    assert time.monotonic() - start < 2
    assert url in str(info.value)
    assert str((tmp_path / "downloads" / "file.tar").resolve()) in str(info.value)


def test_fetch_times_out_on_silent_server(tmp_path):
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/file.tar"
        resource = Resource(name="x", url=url, md5="0" * 32, filename="file.tar")
        with pytest.raises(DownloadError, match="could not fetch"):
            fetch(resource, tmp_path, timeout=0.3)


def test_fetch_uses_present_file_without_request(server, tmp_path):
    body = b"already downloaded"
    resource = _serve(server, "data.tar", body)
    (tmp_path / "data.tar").write_bytes(body)
    assert fetch(resource, tmp_path).read_bytes() == body
    assert server.requests == []


def test_fetch_replaces_wrong_present_file(server, tmp_path):
    body = b"the right content"
    resource = _serve(server, "data.tar", body)
    (tmp_path / "data.tar").write_bytes(b"wrong")
    with pytest.warns(UserWarning, match="expected"):
        assert fetch(resource, tmp_path).read_bytes() == body


# --------------------------------------------------------------------------------------------
# extract


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize("member", [
    tarfile.TarInfo("../escape.txt"),
    tarfile.TarInfo("/tmp/absolute_escape.txt"),
    tarfile.TarInfo("ok/../../escape.txt"),
])
def test_extract_refuses_path_traversal(tmp_path, member):
    archive = _tar_with(tmp_path / "evil.tar", member, b"x")
    with pytest.raises(ValueError, match="outside"):
        extract(archive, tmp_path / "dest")
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "dest" / ".evil.tar.extracted").exists()


def test_extract_refuses_escaping_symlink(tmp_path):
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
    with pytest.raises(ValueError, match="outside"):
        extract(_tar_with(tmp_path / "evil.tar", link), tmp_path / "dest")


def test_extract_is_idempotent_and_redoes_interrupted(tmp_path):
    archive = _tar_with(tmp_path / "a.tar", tarfile.TarInfo("dir/file.txt"), b"hello")
    dest = tmp_path / "dest"
    extract(archive, dest)
    assert (dest / "dir" / "file.txt").read_bytes() == b"hello"
    (dest / "dir" / "file.txt").write_bytes(b"changed")
    extract(archive, dest)  # marker present: nothing redone
    assert (dest / "dir" / "file.txt").read_bytes() == b"changed"
    (dest / ".a.tar.extracted").unlink()  # as if interrupted before the marker
    extract(archive, dest)
    assert (dest / "dir" / "file.txt").read_bytes() == b"hello"


# --------------------------------------------------------------------------------------------
# masks


def _sbd_tree(root: Path) -> Path:
    for image_id, mask in SBD_MASKS.items():
        _save_mat(root / "cls" / f"{image_id}.mat", mask)
    for split, ids in SBD_SPLITS.items():
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def test_convert_sbd_writes_palette_pngs_and_resumes(tmp_path):
    sbd, out = _sbd_tree(tmp_path / "dataset"), tmp_path / "aug"
    assert convert_sbd(sbd, out) == ["2008_000002", "2007_000039"]
    for image_id, mask in SBD_MASKS.items():
        with Image.open(out / f"{image_id}.png") as image:
            assert image.mode == "P"
        np.testing.assert_array_equal(load_label_png(out / f"{image_id}.png"), mask)
    (sbd / "cls" / "2008_000002.mat").unlink()  # already converted: must not be read again
    convert_sbd(sbd, out)


def test_convert_sbd_skips_excluded_ids(tmp_path):
    sbd, out = _sbd_tree(tmp_path / "dataset"), tmp_path / "aug"
    convert_sbd(sbd, out, exclude={"2007_000039"})
    assert sorted(p.name for p in out.iterdir()) == ["2008_000002.png"]


def test_convert_sbd_rejects_bad_mat(tmp_path):
    sbd = _sbd_tree(tmp_path / "dataset")
    bad = sbd / "cls" / "2008_000002.mat"
    scipy.io.savemat(bad, {"GTinst": {"Segmentation": np.zeros((2, 2), np.uint8)}})
    with pytest.raises(ValueError, match="GTcls") as info:
        convert_sbd(sbd, tmp_path / "aug")
    assert str(bad) in str(info.value)


def test_load_sbd_mat_rejects_out_of_range_values(tmp_path):
    path = tmp_path / "x.mat"
    _save_mat(path, np.array([[0, 21], [3, 255]], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[21\]") as info:
        load_sbd_mat(path)
    assert str(path) in str(info.value)


def test_copy_voc_masks_keeps_indices(tmp_path):
    for image_id, mask in VOC_MASKS.items():
        save_label_png(tmp_path / "voc" / f"{image_id}.png", mask)
    assert copy_voc_masks(tmp_path / "voc", tmp_path / "aug") == sorted(VOC_MASKS)
    for image_id, mask in VOC_MASKS.items():
        np.testing.assert_array_equal(load_label_png(tmp_path / "aug" / f"{image_id}.png"), mask)


# --------------------------------------------------------------------------------------------
# prepare_voc


def test_prepare_voc_end_to_end(server, tmp_path, archives):
    voc = _serve(server, "VOCtrainval_11-May-2012.tar", archives["voc"])
    sbd = _serve(server, "benchmark.tgz", archives["sbd"])
    root = prepare_voc(tmp_path / "data", voc=voc, sbd=sbd, timeout=5)
    assert root == tmp_path / "data" / "VOC2012"
    assert sorted(p.stem for p in (root / "JPEGImages").glob("*.jpg")) == [
        "2007_000032", "2007_000039", "2008_000002"]
    assert not (tmp_path / "data" / "VOCdevkit").exists()
    assert (tmp_path / "data" / "downloads" / "benchmark.tgz").is_file()
    aug = root / "SegmentationClassAug"
    assert sorted(p.stem for p in aug.glob("*.png")) == ["2007_000032", "2007_000039",
                                                         "2008_000002"]
    expected = {**SBD_MASKS, **VOC_MASKS}  # VOC wins for 2007_000039
    for image_id, mask in expected.items():
        np.testing.assert_array_equal(load_label_png(aug / f"{image_id}.png"), mask)
    lists = root / "ImageSets" / "SegmentationAug"
    assert read_list(lists / "sbd_train.txt") == SBD_SPLITS["train"]
    assert read_list(lists / "sbd_val.txt") == SBD_SPLITS["val"]
    assert read_list(root / "ImageSets" / "Segmentation" / "train.txt") == ["2007_000032"]

    n_requests = len(server.requests)
    assert prepare_voc(tmp_path / "data", voc=voc, sbd=sbd) == root  # finished: no work
    (root / dl.PREPARED).unlink()  # interrupted during conversion: resume offline
    (aug / "2008_000002.png").unlink()
    prepare_voc(tmp_path / "data", voc=voc, sbd=sbd)
    np.testing.assert_array_equal(load_label_png(aug / "2008_000002.png"),
                                  SBD_MASKS["2008_000002"])
    assert len(server.requests) == n_requests


def test_prepare_voc_offline_names_manual_path(tmp_path):
    voc = Resource(name="voc2012", url=_closed_port_url(), md5="0" * 32,
                   filename="VOCtrainval_11-May-2012.tar")
    with pytest.raises(DownloadError) as info:
        prepare_voc(tmp_path / "data", downloads_dir=tmp_path / "dl", voc=voc, timeout=5)
    assert str((tmp_path / "dl" / "VOCtrainval_11-May-2012.tar").resolve()) in str(info.value)


def test_default_resources_table():
    assert dl.RESOURCES == (dl.VOC2012, dl.SBD)
    assert dl.VOC2012.md5 == "6cd6e144f989b92b3379bac3b3de84fd"
    assert dl.SBD.md5 == "82b4d87ceb2ed10f6038a1cba92111cb"
    assert all(r.url.endswith(r.filename) for r in dl.RESOURCES)
