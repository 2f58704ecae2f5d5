"""The project's Kedro datasets."""

from action100m.datasets.fiftyone_dir import FiftyOneDatasetDir
from action100m.datasets.partitions import (
    PartitionLoaders,
    VideoPartitionsDataset,
    load_upstream,
)
from action100m.datasets.tables import (
    JSONFileDataset,
    JSONLinesDataset,
    ReleaseParquetDataset,
    ReleaseShardsDataset,
    ReleaseSourceDataset,
    TextFileDataset,
)
from action100m.datasets.video_folder import VideoFolderDataset

__all__ = [
    "FiftyOneDatasetDir",
    "JSONFileDataset",
    "JSONLinesDataset",
    "PartitionLoaders",
    "ReleaseParquetDataset",
    "ReleaseShardsDataset",
    "ReleaseSourceDataset",
    "TextFileDataset",
    "VideoFolderDataset",
    "VideoPartitionsDataset",
    "load_upstream",
]
