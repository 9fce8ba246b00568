"""The main example end to end, in a very short offline configuration."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_cub.py"


@pytest.fixture(scope="module")
def train_cub():
    spec = importlib.util.spec_from_file_location("train_cub", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_cub_offline_default_runs_end_to_end(train_cub, tmp_path, capsys) -> None:
    argv = ["--root", str(tmp_path / "no-cub"), "--logdir", str(tmp_path / "runs"), "--epochs", "2"]
    argv += ["--num-train", "64", "--num-val", "32", "--batch-size", "16", "--num-images", "2", "--seed", "1"]
    results = train_cub.main(argv)
    out = capsys.readouterr().out
    assert "not found" in out
    assert "training on the embedded default" in out
    assert f"tensorboard --logdir {tmp_path / 'runs'}" in out
    for key in ("maxboxacc_v2", "maxboxacc", "gt_known_loc", "top1_loc", "pxap"):
        assert 0.0 <= results[key] <= 1.0, key
    assert 0.0 <= results["whole image box/maxboxacc_v2"] <= 1.0
    assert 0.0 <= results["centred mean-size box/maxboxacc_v2"] <= 1.0
    run_dir = tmp_path / "runs" / "synthetic-small-gap"
    assert list(run_dir.rglob("events.out.tfevents.*"))
    assert list(run_dir.rglob("best-epoch=*.ckpt"))


def test_train_cub_help_explains_every_option(train_cub, capsys) -> None:
    with pytest.raises(SystemExit):
        train_cub.main(["--help"])
    out = capsys.readouterr().out
    for option in ("--root", "--download", "--arch", "--weights", "--pool", "--epochs", "--logdir"):
        assert option in out


def test_train_cub_download_offline_fails_fast(train_cub, tmp_path) -> None:
    with pytest.raises((OSError, RuntimeError), match=r"(?i)download|network|connect"):
        train_cub.main(["--root", str(tmp_path), "--download", "--epochs", "1"])
