"""Datasets: Fashion-MNIST IDX files, ImageNet-style folders and .npz arrays, selected by one spec string."""

from .idx import FASHION_MNIST_CLASSES, load_fashion_mnist, read_idx

__all__ = ["FASHION_MNIST_CLASSES", "load_fashion_mnist", "read_idx"]
