"""Label maps in AudioSet's `class_labels_indices.csv` format, as classifier outputs.

The file has a header `index,mid,display_name` and one row per class. Reading
and label matching are those of the extraction side (`vggish.corpus`), so a
`labels` field means the same classes whether `tools.extract` turned it into
record labels or `classifier.train --finetune` reads it: a label matches a
display name, else a mid, and display names containing commas ("Male speech,
man speaking") are matched whole. A classifier additionally needs the indices
to be exactly 0..num_classes-1: they are its output columns.
"""

import dataclasses
import os
from typing import List, Sequence, Tuple, Union

import numpy as np

from vggish import corpus


@dataclasses.dataclass(frozen=True)
class LabelMap:
  """The classes of a classifier, in output order.

  Attributes:
    mids: class ids (AudioSet machine ids such as '/m/09x0r', possibly
      empty), one per class.
    display_names: human-readable names, one per class.
  """
  mids: Tuple[str, ...]
  display_names: Tuple[str, ...]

  def __post_init__(self):
    if len(self.mids) != len(self.display_names):
      raise ValueError('mids and display_names must have the same length')
    if not self.mids:
      raise ValueError('a label map needs at least one class')

  def __len__(self):
    return len(self.mids)

  def to_corpus(self) -> corpus.LabelMap:
    return corpus.LabelMap(tuple(
        (i, mid, name)
        for i, (mid, name) in enumerate(zip(self.mids, self.display_names))))

  def encode(self, labels: Union[str, Sequence[str]]) -> List[int]:
    """Class indices of labels given by display name or mid.

    Args:
      labels: a comma-separated string (a Freesound `labels` field) or a
        sequence of its comma-separated pieces.

    Returns:
      Sorted, de-duplicated class indices.

    Raises:
      ValueError: for a label that is neither a display name nor a mid.
    """
    if isinstance(labels, str):
      labels = [p.strip() for p in labels.split(',') if p.strip()]
    indices, unknown = corpus.match_labels(list(labels),
                                           self.to_corpus().lookup())
    if unknown:
      raise ValueError(
          f'unknown label(s) {list(unknown)}: each label must be a '
          f'display_name or mid of the label map ({len(self)} classes, e.g. '
          f'{self.display_names[0]!r})')
    return sorted(indices)

  def multi_hot(self, label_lists: Sequence[Sequence[int]]) -> np.ndarray:
    """[num_clips, num_classes] float32 0/1 targets from index lists.

    Raises:
      ValueError: for an index outside [0, num_classes).
    """
    targets = np.zeros((len(label_lists), len(self)), dtype=np.float32)
    for row, indices in enumerate(label_lists):
      indices = np.asarray(indices, dtype=np.int64)
      if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
        raise ValueError(
            f'label index {int(indices.max())} of clip {row} is outside the '
            f'label map\'s {len(self)} classes; is it the label map the '
            'records were labelled with?')
      targets[row, indices] = 1.0
    return targets


def load_label_map(path: Union[str, os.PathLike]) -> LabelMap:
  """Reads an `index,mid,display_name` CSV (see `vggish.corpus`).

  Raises:
    ValueError: if the file is missing or malformed, or its indices are not
      0..n-1.
  """
  entries = sorted(corpus.read_label_map(path).entries)
  indices = [index for index, _, _ in entries]
  if indices != list(range(len(entries))):
    raise ValueError(
        f'label map {os.fspath(path)}: a classifier needs the indices 0, 1, '
        f'..., {len(entries) - 1} (its output columns), got '
        f'{indices[:5]}{"..." if len(indices) > 5 else ""}')
  return LabelMap(mids=tuple(mid for _, mid, _ in entries),
                  display_names=tuple(name for _, _, name in entries))


def save_label_map(label_map: LabelMap, path: Union[str, os.PathLike]) -> None:
  """Writes the label map in the same CSV format."""
  corpus.write_label_map(label_map.to_corpus(), path)
