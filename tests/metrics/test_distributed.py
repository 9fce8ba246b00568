"""WSOL metric states are sum-reduced: two gloo processes give exactly the single-process numbers."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_cam.metrics import WSOLMetrics


def _data(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    cams = torch.rand(10, 7, 7, generator=generator)
    corners = torch.randint(0, 100, (10, 2), generator=generator)
    boxes = [torch.cat([c, c + 60])[None].float() for c in corners]
    masks = (torch.rand(10, 160, 160, generator=generator) > 0.5).to(torch.uint8)
    preds = torch.randint(0, 3, (10,), generator=generator)
    labels = torch.randint(0, 3, (10,), generator=generator)
    return cams, boxes, masks, preds, labels


def _update(metric: WSOLMetrics, index: slice) -> None:
    cams, boxes, masks, preds, labels = _data()
    metric.update(
        cams[index],
        boxes=boxes[index],
        masks=masks[index],
        preds=preds[index],
        labels=labels[index],
        image_size=(160, 160),
    )


def _worker(rank: int, port: int, queue) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    metric = WSOLMetrics()
    # Uneven shards: rank 0 sees 7 images in two updates, rank 1 sees 3.
    if rank == 0:
        _update(metric, slice(0, 4))
        _update(metric, slice(4, 7))
    else:
        _update(metric, slice(7, 10))
    results = {k: v.item() for k, v in metric.compute().items()}
    curves = metric.curves()
    queue.put((rank, results, curves["box_accuracy"].tolist()))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process() -> None:
    single = WSOLMetrics()
    _update(single, slice(0, 10))
    expected = {k: v.item() for k, v in single.compute().items()}
    context = mp.get_context("spawn")
    queue = context.Queue()
    mp.spawn(_worker, args=(_free_port(), queue), nprocs=2, join=True)
    for _ in range(2):
        _, results, box_accuracy = queue.get(timeout=60)
        assert results == expected
        assert box_accuracy == single.curves()["box_accuracy"].tolist()
