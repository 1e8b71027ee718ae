"""A corpus of records in memory: one row per clip, its examples concatenated.

`load_clips` reads our TFRecords (uint8 or float32) or AudioSet's released
ones into a `Clips`: clip-level columns (id, labels, times, hop) and all
example embeddings as one [total_examples, 128] float32 array with row
splits, so that tables, maps and duplicate search work on whole arrays
instead of per-record Python objects. 22,160 AudioSet clips load in about
four seconds on two cores.
"""

import dataclasses
import os
from typing import List, Optional, Sequence, Union

import numpy as np

from vggish import labels as labels_lib
from vggish import records
from vggish.params import DEFAULT_PARAMS, Params

# Written by tools.extract next to its records (vggish.corpus.LABEL_MAP_NAME).
LABEL_MAP_NAME = 'class_labels_indices.csv'

PathLike = Union[str, os.PathLike]


@dataclasses.dataclass(frozen=True)
class Clips:
  """Clips and their example embeddings.

  Attributes:
    ids: object [num_clips] str, the records' `video_id`.
    labels: int64 [total_labels], every clip's class indices, concatenated.
    label_splits: int64 [num_clips + 1]: clip i's labels are
      `labels[label_splits[i]:label_splits[i + 1]]`.
    embeddings: float32 [total_examples, 128], dequantized when the records
      store uint8.
    splits: int64 [num_clips + 1]: clip i's examples are
      `embeddings[splits[i]:splits[i + 1]]`.
    start_seconds, end_seconds: float32 [num_clips], the records' times.
    hop_seconds: float32 [num_clips], seconds between a clip's examples.
    embedding_format: what the records store, 'uint8' or 'float32'.
    label_map: the classes, when known (names for the label indices).
  """
  ids: np.ndarray
  labels: np.ndarray
  label_splits: np.ndarray
  embeddings: np.ndarray
  splits: np.ndarray
  start_seconds: np.ndarray
  end_seconds: np.ndarray
  hop_seconds: np.ndarray
  embedding_format: str
  label_map: Optional[labels_lib.LabelMap] = None

  def __len__(self) -> int:
    return len(self.ids)

  @property
  def num_examples(self) -> np.ndarray:
    """int64 [num_clips]."""
    return np.diff(self.splits)

  @property
  def durations(self) -> np.ndarray:
    """float32 [num_clips], end - start seconds."""
    return self.end_seconds - self.start_seconds

  @property
  def example_clip(self) -> np.ndarray:
    """int64 [total_examples]: the clip of each example."""
    return np.repeat(np.arange(len(self), dtype=np.int64), self.num_examples)

  @property
  def example_index(self) -> np.ndarray:
    """int64 [total_examples]: each example's position within its clip."""
    return (np.arange(len(self.embeddings), dtype=np.int64) -
            np.repeat(self.splits[:-1], self.num_examples))

  def clip_embeddings(self, i: int) -> np.ndarray:
    """float32 [n_i, 128], clip i's examples."""
    return self.embeddings[self.splits[i]:self.splits[i + 1]]

  def clip_labels(self, i: int) -> np.ndarray:
    """int64 [k_i], clip i's class indices."""
    return self.labels[self.label_splits[i]:self.label_splits[i + 1]]

  def label_names(self, i: int) -> List[str]:
    """Clip i's labels: display names with a label map, else the indices."""
    indices = self.clip_labels(i)
    if self.label_map is None:
      return [str(int(k)) for k in indices]
    names = dict(zip(self.label_map.indices, self.label_map.display_names))
    return [names.get(int(k), str(int(k))) for k in indices]

  def label_strings(self, separator: str = ';') -> List[str]:
    """Per clip, its label names joined by `separator` ('' when none)."""
    if self.label_map is None:
      names = {}
    else:
      names = dict(zip(self.label_map.indices, self.label_map.display_names))
    out = []
    for i in range(len(self)):
      indices = self.labels[self.label_splits[i]:self.label_splits[i + 1]]
      out.append(separator.join(names.get(int(k), str(int(k))) for k in indices))
    return out

  def subset(self, indices: Sequence[int]) -> 'Clips':
    """The clips at `indices`, in that order."""
    indices = np.asarray(indices, dtype=np.int64)
    lengths, label_lengths = self.num_examples[indices], np.diff(self.label_splits)[indices]
    rows = np.concatenate([np.arange(self.splits[i], self.splits[i + 1])
                           for i in indices] or [np.zeros(0, np.int64)])
    label_rows = np.concatenate(
        [np.arange(self.label_splits[i], self.label_splits[i + 1])
         for i in indices] or [np.zeros(0, np.int64)])
    return dataclasses.replace(
        self, ids=self.ids[indices], labels=self.labels[label_rows.astype(np.int64)],
        label_splits=np.concatenate([[0], np.cumsum(label_lengths)]).astype(np.int64),
        embeddings=self.embeddings[rows.astype(np.int64)],
        splits=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        start_seconds=self.start_seconds[indices],
        end_seconds=self.end_seconds[indices],
        hop_seconds=self.hop_seconds[indices])


def record_files(inputs: Union[PathLike, Sequence[PathLike]]) -> List[str]:
  """TFRecord files of globs, files and directories (a directory: its *.tfrecord).

  Raises:
    ValueError: an input matches no file.
  """
  if isinstance(inputs, (str, os.PathLike)):
    inputs = [inputs]
  patterns = []
  for item in inputs:
    item = os.fspath(item)
    if os.path.isdir(item):
      matches = sorted(os.path.join(item, name) for name in os.listdir(item)
                       if name.endswith('.tfrecord'))
      if not matches:
        raise ValueError(f'directory {item!r} holds no *.tfrecord files')
      patterns.extend(matches)
    else:
      patterns.append(item)
  return records.expand_file_pattern(patterns)


def find_label_map(files: Sequence[str]) -> Optional[str]:
  """The label map tools.extract wrote beside the records, if there is one."""
  for directory in sorted({os.path.dirname(os.path.abspath(f)) for f in files}):
    path = os.path.join(directory, LABEL_MAP_NAME)
    if os.path.isfile(path):
      return path
  return None


def load_clips(inputs: Union[PathLike, Sequence[PathLike]],
               label_map: Union[None, PathLike, labels_lib.LabelMap] = None,
               find_map: bool = True,
               params: Params = DEFAULT_PARAMS) -> Clips:
  """Reads every record of `inputs` into memory.

  Args:
    inputs: TFRecord files, globs or directories (ours, either embedding
      format, or AudioSet's released ones).
    label_map: a `LabelMap` or the path of one (`class_labels_indices.csv`);
      None: the one tools.extract wrote beside the records, when `find_map`
      and there is one, else no names (labels stay indices).
    find_map: look for a label map beside the records when none is given.
    params: hyperparameters (embedding size, quantization range).

  Returns:
    The clips; uint8 embeddings are dequantized (`q * 4/255 - 2`, as
    `vggish.postprocess.dequantize`).

  Raises:
    ValueError: no matching file, records of mixed formats, or an unreadable
      label map.
  """
  files = record_files(inputs)
  if isinstance(label_map, (str, os.PathLike)):
    label_map = labels_lib.read_label_map(label_map)
  elif label_map is None and find_map:
    found = find_label_map(files)
    label_map = labels_lib.read_label_map(found) if found else None
  embedding_format = records.detect_embedding_format(files[0])
  try:
    columns = records.read_columns(files, dequantize=True,
                                   embedding_format=embedding_format,
                                   params=params)
  except Exception as e:  # tf.errors.* from the in-graph format checks.
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    if isinstance(e, tf.errors.OpError):
      raise ValueError(f'cannot read the records: {e.message}') from e
    raise
  return Clips(
      ids=columns[records.VIDEO_ID],
      labels=columns[records.LABELS],
      label_splits=columns['labels_splits'],
      embeddings=np.asarray(columns['embeddings'], np.float32),
      splits=columns['embeddings_splits'],
      start_seconds=columns[records.START_TIME],
      end_seconds=columns[records.END_TIME],
      hop_seconds=columns[records.EXAMPLE_HOP],
      embedding_format=embedding_format,
      label_map=label_map)
