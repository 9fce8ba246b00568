import os
import socket

import pytest
import torch

from lightning_cam import GAPClassifier

from .helpers import tiny_cnn

# Two cores shared by the whole suite: more intra-op threads only add contention.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to open a connection outside this machine."""
    original = socket.socket.connect

    def guarded(sock: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise OSError(f"network access blocked in tests: {address!r}")
        return original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("TORCH_HOME", os.path.join(os.environ.get("TMPDIR", "/tmp"), "lightning_cam_no_torch_home"))


@pytest.fixture
def tiny_model() -> GAPClassifier:
    torch.manual_seed(0)
    return tiny_cnn().eval()
