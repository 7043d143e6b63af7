"""Datasets: Fashion-MNIST IDX files, ImageNet-style folders and .npz arrays, selected by one spec string."""

from .datasets import (
    ArrayDataset,
    Dataset,
    FolderDataset,
    check_compatible,
    check_labels_fit,
    load_npz,
    open_dataset,
)
from .idx import FASHION_MNIST_CLASSES, load_fashion_mnist, read_idx
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, load_image, preprocess_pil

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ArrayDataset",
    "Dataset",
    "FolderDataset",
    "check_compatible",
    "check_labels_fit",
    "load_fashion_mnist",
    "load_image",
    "load_npz",
    "open_dataset",
    "preprocess_pil",
    "read_idx",
]
