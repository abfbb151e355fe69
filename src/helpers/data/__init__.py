"""Data for the course: the embedded generator, real-data loaders, validation, splits and cache.

Notebook 00 teaches this module; every later notebook only calls `load_split`.
"""

from .course import (
    OUT_OF_CENTRE,
    TASKS,
    UNUSED,
    DataSources,
    PreparedData,
    detect_sources,
    fingerprint,
    load_split,
    polyp_counts,
    prepare,
    provenance,
    read_data_report,
    resolve_sources,
    split_samples,
)
from .external import describe_external, load_external, prepare_external
from .images import (
    COLOUR_CLASSES,
    IMAGE_EXTENSIONS,
    Decoded,
    ImageCache,
    ImageProblem,
    decode,
    decode_mask,
    mask_foreground,
    to_rgb8,
)
from .layouts import (
    BadFile,
    DataError,
    LoadedSet,
    Sample,
    load_samples,
    scan_classification,
    scan_image_folder,
    scan_segmentation,
)
from .splits import find_split_lists, read_split_lists, splits_from_lists, stratified_splits
from .synthetic import CLASSES, generate, render_frame

__all__ = [
    "OUT_OF_CENTRE",
    "UNUSED",
    "TASKS",
    "DataSources",
    "PreparedData",
    "detect_sources",
    "fingerprint",
    "load_split",
    "polyp_counts",
    "prepare",
    "split_samples",
    "provenance",
    "read_data_report",
    "resolve_sources",
    "describe_external",
    "load_external",
    "prepare_external",
    "COLOUR_CLASSES",
    "IMAGE_EXTENSIONS",
    "Decoded",
    "ImageCache",
    "ImageProblem",
    "decode",
    "decode_mask",
    "mask_foreground",
    "to_rgb8",
    "BadFile",
    "DataError",
    "LoadedSet",
    "Sample",
    "load_samples",
    "scan_classification",
    "scan_image_folder",
    "scan_segmentation",
    "find_split_lists",
    "read_split_lists",
    "splits_from_lists",
    "stratified_splits",
    "CLASSES",
    "generate",
    "render_frame",
]
