"""The label map (AudioSet's `class_labels_indices.csv`) of extraction and classifiers.

The file has a header `index,mid,display_name` and one row per class:

    index,mid,display_name
    0,/m/09x0r,"Speech"
    1,/m/05zppz,"Male speech, man speaking"

A label matches an entry's `display_name`, else its `mid`. AudioSet names may
themselves contain commas ("Male speech, man speaking"), so a comma-separated
labels field is matched greedily: the longest run of pieces that names an
entry wins. The same `LabelMap` turns a Freesound `labels` field into record
labels in `tools.extract` (`vggish.corpus`) and into classifier targets in
`classifier.train`, so a label means the same class on both sides.

A classifier additionally needs the indices to be exactly 0..num_classes-1:
they are its output columns (`LabelMap.as_classes`, `read_classes`).
"""

import csv
import dataclasses
import io
import os
from typing import Dict, Iterable, List, Sequence, Tuple, Union

import numpy as np

from vggish import files as files_lib

PathLike = Union[str, os.PathLike]

LABEL_MAP_FIELDS = ('index', 'mid', 'display_name')


@dataclasses.dataclass(frozen=True)
class LabelMap:
  """Class indices, AudioSet mids and display names (`class_labels_indices.csv`).

  Attributes:
    entries: (index, mid, display_name) rows, in file order; mids may be empty
      (a map built from a CSV's label names has none).
  """
  entries: Tuple[Tuple[int, str, str], ...]

  def __post_init__(self):
    indices = self.indices
    if len(set(indices)) != len(indices):
      raise ValueError('a label map must not repeat an index')

  @property
  def indices(self) -> Tuple[int, ...]:
    return tuple(index for index, _, _ in self.entries)

  @property
  def mids(self) -> Tuple[str, ...]:
    return tuple(mid for _, mid, _ in self.entries)

  @property
  def display_names(self) -> Tuple[str, ...]:
    return tuple(name for _, _, name in self.entries)

  def __len__(self) -> int:
    return len(self.entries)

  def lookup(self) -> Dict[str, int]:
    """label -> index, by display name first, then by mid."""
    table = {mid: index for index, mid, _ in self.entries if mid}
    table.update({name: index for index, _, name in self.entries})
    return table

  def with_names(self, names: Iterable[str]) -> 'LabelMap':
    """This map plus the names it lacks (sorted), numbered after its last index."""
    known = self.lookup()
    new = sorted({n for n in names if n not in known})
    if not new:
      return self
    start = max(self.indices, default=-1) + 1
    return LabelMap(self.entries + tuple(
        (start + i, '', name) for i, name in enumerate(new)))

  def as_classes(self, name: str) -> 'LabelMap':
    """This map as a classifier's outputs: entry i is class (column) i.

    Args:
      name: how the map is named in error messages (its path).

    Returns:
      The map with its entries in index order (itself when they already are).

    Raises:
      ValueError: the map is empty, or its indices are not 0..n-1.
    """
    entries = tuple(sorted(self.entries))
    if not entries:
      raise ValueError(
          f'label map {name}: a classifier needs at least one class')
    indices = [index for index, _, _ in entries]
    if indices != list(range(len(entries))):
      raise ValueError(
          f'label map {name}: a classifier needs the indices 0, 1, '
          f'..., {len(entries) - 1} (its output columns), got '
          f'{indices[:5]}{"..." if len(indices) > 5 else ""}')
    return self if entries == self.entries else LabelMap(entries)

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
    indices, unknown = match_labels(list(labels), self.lookup())
    if unknown:
      example = f', e.g. {self.display_names[0]!r}' if self.entries else ''
      raise ValueError(
          f'unknown label(s) {list(unknown)}: each label must be a '
          f'display_name or mid of the label map ({len(self)} classes'
          f'{example})')
    return sorted(indices)

  def multi_hot(self, label_lists: Sequence[Sequence[int]]) -> np.ndarray:
    """[num_clips, num_classes] float32 0/1 targets from index lists.

    Args:
      label_lists: per clip, class indices (of a map from `as_classes`).

    Raises:
      ValueError: for an index outside [0, num_classes), or a map whose
        entries are not the classes 0..n-1 in order.
    """
    if self.indices != tuple(range(len(self))):
      raise ValueError('multi_hot needs the classes 0..n-1 in order: call '
                       'as_classes() on the label map first')
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


def build_label_map(names: Iterable[str]) -> LabelMap:
  """A label map of the distinct names, sorted, indices 0..n-1, no mids."""
  return LabelMap(()).with_names(names)


def read_label_map(path: PathLike,
                   files: files_lib.LocalFiles = files_lib.LOCAL) -> LabelMap:
  """Reads an AudioSet-format `index,mid,display_name` CSV.

  Raises:
    ValueError: the file is missing, lacks the columns, or has a bad index.
  """
  path = os.fspath(path)
  if not files.isfile(path):
    raise ValueError(f'label map {path!r} does not exist')
  return parse_label_map(files.read_text(path), path)


def read_classes(path: PathLike,
                 files: files_lib.LocalFiles = files_lib.LOCAL) -> LabelMap:
  """Reads a classifier's label map: `read_label_map`, then `as_classes`.

  Raises:
    ValueError: the file cannot be read, or its indices are not 0..n-1.
  """
  return read_label_map(path, files).as_classes(os.fspath(path))


def parse_label_map(text: str, name: str) -> LabelMap:
  """The label map in a CSV's text; `name` (its path) is for messages."""
  reader = csv.DictReader(io.StringIO(text, newline=''))
  fields = [field.strip() for field in reader.fieldnames or ()]
  reader.fieldnames = fields
  if not set(LABEL_MAP_FIELDS) <= set(fields):
    raise ValueError(
        f'label map {name}: expected AudioSet columns {",".join(LABEL_MAP_FIELDS)}, '
        f'got {fields}')
  entries = []
  for line, row in enumerate(reader, start=2):
    try:
      index = int(row['index'])
    except (TypeError, ValueError):
      raise ValueError(
          f'label map {name}, line {line}: index {row["index"]!r} is not an integer'
      ) from None
    entries.append((index, (row['mid'] or '').strip(),
                    (row['display_name'] or '').strip()))
  try:
    return LabelMap(tuple(entries))
  except ValueError as e:
    raise ValueError(f'label map {name}: {e}') from None


def format_label_map(label_map: LabelMap) -> str:
  """`label_map` as the text of an `index,mid,display_name` CSV."""
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(LABEL_MAP_FIELDS)
  writer.writerows(label_map.entries)
  return buffer.getvalue()


def write_label_map(label_map: LabelMap, path: PathLike,
                    files: files_lib.LocalFiles = files_lib.LOCAL) -> None:
  """Writes `label_map` as `index,mid,display_name` (atomically: temp + rename)."""
  files.write_text(os.fspath(path), format_label_map(label_map))


def match_labels(labels: Sequence[str], lookup: Dict[str, int]
                 ) -> Tuple[Tuple[int, ...], Tuple[str, ...]]:
  """Maps comma-split label pieces to indices, rejoining pieces of comma names.

  Args:
    labels: the pieces of a labels field split at commas.
    lookup: label -> index (`LabelMap.lookup()`).

  Returns:
    (indices in order without repeats, the pieces that matched nothing).
  """
  indices, unknown = [], []
  i = 0
  while i < len(labels):
    # Longest first: "Male speech, man speaking" beats a label "Male speech".
    for j in range(len(labels), i, -1):
      index = lookup.get(', '.join(labels[i:j]))
      if index is not None:
        if index not in indices:
          indices.append(index)
        i = j
        break
    else:
      unknown.append(labels[i])
      i += 1
  return tuple(indices), tuple(unknown)
