import hashlib
import io
import tarfile
import time
import urllib.error
from pathlib import Path

import pytest

from lightning_cam.data import CUB_IMAGES, CUB_SEGMENTATIONS, Archive, CUBDataModule, download_archive, md5sum
from lightning_cam.data import download as download_module


def make_tgz(folder: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def payload() -> bytes:
    return make_tgz("CUB_200_2011", {"images.txt": b"1 001.A/a.jpg\n", "classes.txt": b"1 001.A\n"})


def fake_archive(payload: bytes) -> Archive:
    return Archive(
        "https://example.invalid/CUB_200_2011.tgz", "CUB_200_2011.tgz", hashlib.md5(payload).hexdigest(), "CUB_200_2011"
    )


def serve(monkeypatch: pytest.MonkeyPatch, payload: bytes) -> list[str]:
    """Replace the network with an in-memory file; return the list of URLs fetched."""
    fetched = []

    def fake_fetch(url: str, destination: Path, timeout: float) -> None:
        fetched.append(url)
        destination.write_bytes(payload)

    monkeypatch.setattr(download_module, "fetch_url", fake_fetch)
    return fetched


def test_published_archives():
    assert CUB_IMAGES.url.startswith("https://data.caltech.edu/")
    assert CUB_IMAGES.md5 == "97eceeb196236b17998738112f37df78"
    assert CUB_SEGMENTATIONS.url.startswith("https://data.caltech.edu/")
    assert all(len(a.md5) == 32 for a in (CUB_IMAGES, CUB_SEGMENTATIONS))


def test_md5sum(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    assert md5sum(path, chunk_size=1000) == hashlib.md5(b"x" * 3_000_000).hexdigest()


def test_download_checks_md5_then_extracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: bytes):
    fetched = serve(monkeypatch, payload)
    target = download_archive(fake_archive(payload), tmp_path / "root")
    assert target == tmp_path / "root" / "CUB_200_2011"
    assert (target / "images.txt").read_bytes() == b"1 001.A/a.jpg\n"
    assert (tmp_path / "root" / "CUB_200_2011.tgz").is_file()
    assert not (tmp_path / "root" / "CUB_200_2011.tgz.part").exists()
    # Already extracted: nothing is fetched again.
    download_archive(fake_archive(payload), tmp_path / "root")
    assert len(fetched) == 1


def test_archive_already_downloaded_is_verified_and_extracted_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: bytes
):
    fetched = serve(monkeypatch, b"never used")
    (tmp_path / "CUB_200_2011.tgz").write_bytes(payload)
    download_archive(fake_archive(payload), tmp_path)
    assert fetched == []
    assert (tmp_path / "CUB_200_2011" / "classes.txt").is_file()


def test_md5_mismatch_of_a_download_is_rejected_and_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: bytes
):
    serve(monkeypatch, payload + b"corrupted")
    with pytest.raises(ValueError, match="Expected MD5") as info:
        download_archive(fake_archive(payload), tmp_path)
    assert "deleted" in str(info.value)
    assert not (tmp_path / "CUB_200_2011.tgz").exists()
    assert not (tmp_path / "CUB_200_2011").exists()


def test_md5_mismatch_of_a_placed_archive_is_rejected_and_kept(tmp_path: Path, payload: bytes):
    (tmp_path / "CUB_200_2011.tgz").write_bytes(b"not the archive")
    with pytest.raises(ValueError, match="Delete or replace"):
        download_archive(fake_archive(payload), tmp_path)
    assert (tmp_path / "CUB_200_2011.tgz").read_bytes() == b"not the archive"
    assert not (tmp_path / "CUB_200_2011").exists()


def test_archive_without_the_expected_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    other = make_tgz("something_else", {"a.txt": b"a"})
    serve(monkeypatch, other)
    archive = Archive("https://example.invalid/x.tgz", "x.tgz", hashlib.md5(other).hexdigest(), "CUB_200_2011")
    with pytest.raises(ValueError, match="CUB_200_2011/"):
        download_archive(archive, tmp_path)


def test_unsafe_archive_members_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    evil = make_tgz("..", {"escaped.txt": b"x"})
    serve(monkeypatch, evil)
    archive = Archive("https://example.invalid/x.tgz", "x.tgz", hashlib.md5(evil).hexdigest(), "CUB_200_2011")
    with pytest.raises(tarfile.OutsideDestinationError):
        download_archive(archive, tmp_path / "root")
    assert not (tmp_path / "escaped.txt").exists()


def test_offline_download_fails_fast_with_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = []

    def offline(request, timeout):
        calls.append(timeout)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download_module.urllib.request, "urlopen", offline)
    start = time.perf_counter()
    with pytest.raises(ConnectionError) as info:
        download_archive(CUB_IMAGES, tmp_path, timeout=2.0)
    assert time.perf_counter() - start < 1.0
    assert calls == [2.0]
    message = str(info.value)
    assert CUB_IMAGES.url in message
    assert str(tmp_path / "CUB_200_2011.tgz") in message
    assert CUB_IMAGES.md5 in message
    assert not (tmp_path / "CUB_200_2011.tgz.part").exists()
    with pytest.raises(ValueError, match="timeout"):
        download_archive(CUB_IMAGES, tmp_path, timeout=0)


def test_timeout_during_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def stalled(request, timeout):
        raise TimeoutError("timed out")

    monkeypatch.setattr(download_module.urllib.request, "urlopen", stalled)
    with pytest.raises(ConnectionError, match="timed out"):
        download_archive(CUB_SEGMENTATIONS, tmp_path)


def test_fetch_url_streams_the_response(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    class Response(io.BytesIO):
        headers = {"Content-Length": "3000000"}

    seen = {}

    def fake_urlopen(request, timeout):
        seen["url"], seen["timeout"] = request.full_url, timeout
        return Response(b"y" * 3_000_000)

    monkeypatch.setattr(download_module.urllib.request, "urlopen", fake_urlopen)
    download_module.fetch_url("https://example.invalid/f", tmp_path / "f", timeout=3.0)
    assert seen == {"url": "https://example.invalid/f", "timeout": 3.0}
    assert (tmp_path / "f").read_bytes() == b"y" * 3_000_000


def test_datamodule_download_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def offline(request, timeout):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(download_module.urllib.request, "urlopen", offline)
    dm = CUBDataModule(tmp_path, download=True, with_masks=True, num_workers=0)  # no check before downloading
    with pytest.raises(ConnectionError, match="CUB_200_2011.tgz"):
        dm.prepare_data()


def test_datamodule_download_fetches_segmentations_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = []

    def record(archive, root, timeout=10.0):
        calls.append(archive.filename)
        return Path(root) / archive.extracts_to

    monkeypatch.setattr(download_module, "download_archive", record)
    CUBDataModule(tmp_path, download=True, num_workers=0).prepare_data()
    assert calls == ["CUB_200_2011.tgz"]
    CUBDataModule(tmp_path, download=True, with_masks=True, num_workers=0).prepare_data()
    assert calls == ["CUB_200_2011.tgz", "CUB_200_2011.tgz", "segmentations.tgz"]
