"""Data for WSOL: CUB-200-2011 (official and wsolevaluation layouts) and an offline synthetic dataset.

Every dataset yields the same sample dicts and every DataModule the same batches (see
:mod:`~lightning_cam.data.collate`), so callbacks and metrics work unchanged on either.
"""

from lightning_cam.data.collate import WSOLBatch, WSOLSample, wsol_collate
from lightning_cam.data.cub import (
    CUBDataModule,
    clean_class_name,
    locate_cub,
    locate_segmentations,
    read_cub_class_names,
    read_cub_records,
)
from lightning_cam.data.datamodule import WSOLDataModule
from lightning_cam.data.dataset import WSOLImageDataset, WSOLRecord
from lightning_cam.data.download import CUB_IMAGES, CUB_SEGMENTATIONS, Archive, download_archive, download_cub, md5sum
from lightning_cam.data.synthetic import SyntheticWSOLDataModule, SyntheticWSOLDataset, synthetic_class_names
from lightning_cam.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WSOLEvalTransform,
    WSOLTrainTransform,
    crop_boxes,
    hflip_boxes,
    mask_to_box,
    normalize_image,
    resize_boxes,
)
from lightning_cam.data.wsol_metadata import read_wsol_metadata

__all__ = [
    "CUB_IMAGES",
    "CUB_SEGMENTATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Archive",
    "CUBDataModule",
    "SyntheticWSOLDataModule",
    "SyntheticWSOLDataset",
    "WSOLBatch",
    "WSOLDataModule",
    "WSOLEvalTransform",
    "WSOLImageDataset",
    "WSOLRecord",
    "WSOLSample",
    "WSOLTrainTransform",
    "clean_class_name",
    "crop_boxes",
    "download_archive",
    "download_cub",
    "hflip_boxes",
    "locate_cub",
    "locate_segmentations",
    "mask_to_box",
    "md5sum",
    "normalize_image",
    "read_cub_class_names",
    "read_cub_records",
    "read_wsol_metadata",
    "resize_boxes",
    "synthetic_class_names",
    "wsol_collate",
]
