"""Fetch and unpack the official CUB-200-2011 archives, checking their published MD5 first.

The archives live on CaltechDATA, the Caltech data host (records ``65de6-vp158`` for the images and
``w9d68-gec53`` for the segmentations). Offline, a download fails within ``timeout`` seconds with a message that
says which file to fetch by hand and where to put it; an archive already in place is verified and unpacked
without touching the network.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archive:
    """A downloadable archive.

    Attributes:
        url: where to fetch it.
        filename: name of the archive file in the download folder.
        md5: published MD5 of the archive (hex).
        extracts_to: the top-level folder the archive creates; its presence means the archive is unpacked.
    """

    url: str
    filename: str
    md5: str
    extracts_to: str


CUB_IMAGES = Archive(
    url="https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
    filename="CUB_200_2011.tgz",
    md5="97eceeb196236b17998738112f37df78",
    extracts_to="CUB_200_2011",
)
"""CUB-200-2011 images, boxes, labels and split (1.1 GB)."""

CUB_SEGMENTATIONS = Archive(
    url="https://data.caltech.edu/records/w9d68-gec53/files/segmentations.tgz?download=1",
    filename="segmentations.tgz",
    md5="4d47ba1228eae64f2fa547c47bc65255",
    extracts_to="segmentations",
)
"""CUB-200-2011 foreground segmentations, one grayscale PNG per image (39 MB)."""


def md5sum(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex MD5 digest of a file, read in chunks.

    Args:
        path: the file.
        chunk_size: bytes read at a time.

    Returns:
        The 32-character lowercase hex digest.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / "f").write_bytes(b"abc")
        ...     print(md5sum(Path(folder) / "f"))
        900150983cd24fb0d6963f7d28e17f72
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_url(url: str, destination: Path, timeout: float) -> None:
    """Stream ``url`` into ``destination`` with a progress bar; the only function here that uses the network.

    Args:
        url: http(s) address.
        destination: file to write.
        timeout: seconds allowed for connecting and for each read.

    Raises:
        urllib.error.URLError: when the host cannot be reached (offline, DNS failure, HTTP error).
        TimeoutError: when the connection stalls for longer than ``timeout``.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "lightning_cam (python urllib)"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(destination, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name, leave=False) as bar:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                bar.update(len(chunk))


def _manual_steps(archive: Archive, root: Path) -> str:
    return (
        f"Download {archive.url} on a machine with internet access, place it at {root / archive.filename} "
        f"(it is checked against MD5 {archive.md5}) or unpack it so that {root / archive.extracts_to} exists, "
        "then run again."
    )


def download_archive(archive: Archive, root: str | os.PathLike[str], timeout: float = 10.0) -> Path:
    """Make sure ``archive`` is unpacked under ``root``: reuse, verify, download and extract as needed.

    Nothing happens when ``root / archive.extracts_to`` exists. Otherwise the archive file is taken from
    ``root / archive.filename`` when present, else downloaded; either way its MD5 must match before anything is
    extracted (a mismatching download is deleted, a mismatching file you placed there is left for you to replace).
    Extraction uses tarfile's ``"data"`` filter, which refuses absolute paths, links out of ``root`` and devices.

    Args:
        archive: what to fetch.
        root: folder to download to and extract in; created if needed.
        timeout: socket timeout in seconds for the download.

    Returns:
        The extracted folder ``root / archive.extracts_to``.

    Raises:
        ValueError: for a non-positive timeout, an MD5 mismatch, or an archive that does not create
            ``archive.extracts_to``.
        ConnectionError: when the download fails (offline, host unreachable, timeout), with the manual steps.

    Example:
        >>> import tempfile
        >>> archive = Archive("https://example.invalid/a.tgz", "a.tgz", "0" * 32, "already_there")
        >>> with tempfile.TemporaryDirectory() as root:
        ...     (Path(root) / "already_there").mkdir()
        ...     print(download_archive(archive, root).name)  # already unpacked: no network, no checksum
        already_there
    """
    if timeout <= 0:
        raise ValueError(f"Expected a positive `timeout`, got {timeout}.")
    root = Path(root)
    target = root / archive.extracts_to
    if target.exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    path = root / archive.filename
    downloaded = False
    if not path.is_file():
        partial = path.with_name(path.name + ".part")
        log.info("Downloading %s to %s", archive.url, path)
        try:
            fetch_url(archive.url, partial, timeout)
        except OSError as err:  # URLError and socket timeouts are OSErrors
            partial.unlink(missing_ok=True)
            raise ConnectionError(f"Could not download {archive.url}: {err}. {_manual_steps(archive, root)}") from err
        partial.replace(path)
        downloaded = True
    actual = md5sum(path)
    if actual != archive.md5:
        if downloaded:
            path.unlink()
            action = "The corrupted download was deleted; run again to retry."
        else:
            action = f"Delete or replace {path}."
        raise ValueError(f"Expected MD5 {archive.md5} for {path}, got {actual}. {action}")
    log.info("Extracting %s to %s", path, root)
    with tarfile.open(path) as tar:
        tar.extractall(root, filter="data")
    if not target.exists():
        raise ValueError(f"Expected {path} to contain the folder {archive.extracts_to}/, but extracting it did not.")
    return target


def download_cub(
    root: str | os.PathLike[str], with_segmentations: bool = False, timeout: float = 10.0, keep_archives: bool = True
) -> Path:
    """Fetch CUB-200-2011 (and optionally its segmentations) into ``root``, checking the published MD5s.

    Produces ``root/CUB_200_2011/`` (images, boxes, labels, split) and, with ``with_segmentations``,
    ``root/segmentations/<class folder>/<image name>.png``.

    Args:
        root: destination folder.
        with_segmentations: also fetch the segmentation masks.
        timeout: socket timeout in seconds; offline, the call fails after at most about this long.
        keep_archives: keep the ``.tgz`` files after extraction (set ``False`` to free 1.2 GB).

    Returns:
        The ``CUB_200_2011`` folder.

    Raises:
        ConnectionError: when a download fails, naming the file to fetch by hand and where to put it.
        ValueError: when an archive fails its MD5 check.
    """
    root = Path(root)
    archives = [CUB_IMAGES, CUB_SEGMENTATIONS] if with_segmentations else [CUB_IMAGES]
    for archive in archives:
        download_archive(archive, root, timeout=timeout)
        if not keep_archives:
            (root / archive.filename).unlink(missing_ok=True)
    return root / CUB_IMAGES.extracts_to
