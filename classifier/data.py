"""In-memory clip data for the classifier: embeddings from TFRecords, log-mel from audio.

The data sets are small (AudioSet's balanced train split is 22 160 clips of
at most ten 128-d embeddings, 113 MB as float32), so they are read once into
numpy and batched from there: much faster per epoch than re-reading records.

A `ClipSet` stores the clips' examples back to back (ragged, like a
`tf.RaggedTensor`) and pads each batch only to its own longest clip, so a
few long clips do not inflate every batch.
"""

import dataclasses
import hashlib
import os
import logging
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from vggish import audio_io
from vggish import corpus
from vggish import frontend
from vggish import labels as labels_lib
from vggish import records
from vggish.params import DEFAULT_PARAMS, Params

TRAIN, VALIDATION, TEST = 'train', 'validation', 'test'
# Clip ids named in an error message, at most.
_MAX_IDS_SHOWN = 5


class NonFiniteError(ValueError):
  """Embeddings, examples or scores hold NaN or Inf."""


def nonfinite_clip_ids(clip_set: 'ClipSet') -> List[str]:
  """The ids of the clips whose values hold NaN or Inf, in clip order."""
  values = clip_set.values.reshape(len(clip_set.values), -1)
  bad_rows = ~np.isfinite(values).all(axis=1)  # [total_examples]
  if not bad_rows.any():
    return []
  # Clip i owns rows row_splits[i]:row_splits[i + 1].
  clips = np.searchsorted(clip_set.row_splits, np.flatnonzero(bad_rows),
                          side='right') - 1
  return [str(clip_set.ids[i]) for i in np.unique(clips)]


def describe_ids(ids: Sequence[str]) -> str:
  """'a, b, c' or 'a, b, c, d, e and 7 more' for error messages."""
  shown = ', '.join(ids[:_MAX_IDS_SHOWN])
  more = len(ids) - _MAX_IDS_SHOWN
  return f'{shown} and {more} more' if more > 0 else shown


@dataclasses.dataclass
class ClipSet:
  """Clips of examples (embeddings or log-mel patches) with multi-hot labels.

  Attributes:
    ids: [num_clips] str, clip ids (video ids or file names).
    values: [total_examples, *feature_shape] float32, every clip's examples
      back to back.
    row_splits: [num_clips + 1] int64; clip i is
      `values[row_splits[i]:row_splits[i + 1]]`.
    labels: [num_clips, num_classes] float32 0/1.
  """
  ids: np.ndarray
  values: np.ndarray
  row_splits: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    self.ids = np.asarray(self.ids, dtype=object)
    self.row_splits = np.asarray(self.row_splits, dtype=np.int64)
    if not (len(self.ids) == len(self.labels) == len(self.row_splits) - 1):
      raise ValueError('ids, labels and row_splits disagree on the number of '
                       'clips')
    if self.row_splits[-1] != len(self.values):
      raise ValueError('row_splits do not cover values')

  def __len__(self):
    return len(self.ids)

  @property
  def num_examples(self) -> np.ndarray:
    """[num_clips] int64, examples per clip."""
    return np.diff(self.row_splits)

  @property
  def feature_shape(self) -> Tuple[int, ...]:
    return tuple(self.values.shape[1:])

  @property
  def num_classes(self) -> int:
    return self.labels.shape[1]

  def clip(self, i: int) -> np.ndarray:
    return self.values[self.row_splits[i]:self.row_splits[i + 1]]

  def subset(self, indices) -> 'ClipSet':
    """The clips at `indices` (ints or a boolean mask), in that order."""
    indices = np.asarray(indices)
    if indices.dtype == bool:
      indices = np.flatnonzero(indices)
    elif indices.size == 0:
      indices = indices.astype(np.int64)  # np.asarray([]) is float64.
    lengths = self.num_examples[indices]
    row_splits = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    gather = (np.concatenate([
        np.arange(self.row_splits[i], self.row_splits[i + 1]) for i in indices
    ]) if len(indices) else np.zeros(0, np.int64)).astype(np.int64)
    return ClipSet(ids=self.ids[indices], values=self.values[gather],
                   row_splits=row_splits, labels=self.labels[indices])

  def padded_batch(self, indices, max_examples: Optional[int] = None,
                   rng: Optional[np.random.Generator] = None
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """Pads the clips at `indices` to their longest (or `max_examples`).

    Args:
      indices: [b] clip indices.
      max_examples: longer clips are cut to this many examples: a random
        window when `rng` is given (training), else the first ones.
      rng: numpy Generator for random crops.

    Returns:
      (features [b, t, *feature_shape] float32, mask [b, t] float32) with t
      the longest (cut) clip, at least 1 so that shapes stay valid.
    """
    lengths = self.num_examples[indices]
    if max_examples is not None:
      lengths = np.minimum(lengths, max_examples)
    t = max(1, int(lengths.max()) if len(lengths) else 1)
    features = np.zeros((len(indices), t) + self.feature_shape, np.float32)
    mask = np.zeros((len(indices), t), np.float32)
    for row, (i, n) in enumerate(zip(indices, lengths)):
      start = self.row_splits[i]
      available = self.row_splits[i + 1] - start
      if available > n and rng is not None:
        start += int(rng.integers(0, available - n + 1))
      features[row, :n] = self.values[start:start + n]
      mask[row, :n] = 1.0
    return features, mask

  def training_batches(self, batch_size: int,
                       max_examples: Optional[int] = None,
                       rng: Optional[np.random.Generator] = None,
                       sampling: Optional[np.ndarray] = None
                       ) -> Iterator[Tuple[np.ndarray, np.ndarray,
                                           np.ndarray]]:
    """One epoch of training batches in a random order.

    Args:
      batch_size: clips per batch.
      max_examples: longer clips are cut to a random window of this many.
      rng: numpy Generator: the order and the windows.
      sampling: [num_clips] probabilities: the epoch is `len(self)` clips
        drawn with replacement (balanced sampling); None: each clip once.

    Yields:
      ceil(len(self) / batch_size) tuples (features [b, t, *feature_shape]
      float32, mask [b, t] float32, labels [b, num_classes] float32).
    """
    rng = np.random.default_rng() if rng is None else rng
    if sampling is None:
      order = rng.permutation(len(self))
    else:
      order = rng.choice(len(self), size=len(self), p=sampling)
    for start in range(0, len(self), batch_size):
      indices = order[start:start + batch_size]
      features, mask = self.padded_batch(indices, max_examples, rng)
      yield features, mask, self.labels[indices]

  def inference_batches(self, examples_per_batch: int
                        ) -> Iterator[Tuple[np.ndarray, np.ndarray,
                                            np.ndarray]]:
    """Every clip once, whole, in batches of at most `examples_per_batch`
    padded examples (or one clip, if longer).

    Clips are sorted by length so that little is padded.

    Yields:
      (clip indices [b] int64, features [b, t, *feature_shape] float32,
      mask [b, t] float32).
    """
    order = np.argsort(self.num_examples, kind='stable')
    batch = []
    for i in order:
      longest = max(1, int(self.num_examples[i]))  # Sorted: the longest.
      if batch and (len(batch) + 1) * longest > examples_per_batch:
        indices = np.asarray(batch, np.int64)
        yield (indices,) + self.padded_batch(indices)
        batch = []
      batch.append(i)
    if batch:
      indices = np.asarray(batch, np.int64)
      yield (indices,) + self.padded_batch(indices)


def concatenate(clip_sets: Sequence[ClipSet]) -> ClipSet:
  """One ClipSet of several (same features and classes)."""
  offsets = np.cumsum([0] + [len(s.values) for s in clip_sets])
  row_splits = np.concatenate(
      [[0]] + [s.row_splits[1:] + off for s, off in zip(clip_sets, offsets)])
  return ClipSet(ids=np.concatenate([s.ids for s in clip_sets]),
                 values=np.concatenate([s.values for s in clip_sets]),
                 row_splits=row_splits,
                 labels=np.concatenate([s.labels for s in clip_sets]))


def from_clips(ids, clips, label_lists, label_map, feature_shape) -> ClipSet:
  """A ClipSet from per-clip arrays [n_i, *feature_shape] and index lists."""
  lengths = [len(c) for c in clips]
  row_splits = np.r_[0, np.cumsum(lengths)].astype(np.int64)
  nonempty = [c for c in clips if len(c)]
  values = (np.concatenate(nonempty).astype(np.float32) if nonempty else
            np.zeros((0,) + tuple(feature_shape), np.float32))
  return ClipSet(ids=np.array(ids, dtype=object), values=values,
                 row_splits=row_splits,
                 labels=label_map.multi_hot(label_lists))


@dataclasses.dataclass(frozen=True)
class RecordInfo:
  """What the records say about their embeddings (saved with the model).

  Attributes:
    embedding_format: 'uint8' (PCA + quantized, read dequantized) or
      'float32' (raw VGGish embeddings).
    example_hop_seconds: seconds between consecutive examples.
  """
  embedding_format: str
  example_hop_seconds: float


def load_records(file_pattern, label_map: labels_lib.LabelMap,
                 embedding_format: Optional[str] = None,
                 params: Params = DEFAULT_PARAMS
                 ) -> Tuple[ClipSet, RecordInfo]:
  """Reads every record matching `file_pattern` into memory.

  Args:
    file_pattern: a glob, a file, or a list of them (see
      `vggish.records.expand_file_pattern`).
    label_map: the classes; record labels must be indices into it.
    embedding_format: expected format, or None to detect it.
    params: hyperparameters.

  Returns:
    (ClipSet of float32 [*, 128] embeddings, dequantized when stored as
    uint8, RecordInfo).

  Raises:
    ValueError: no matching file, no record, mixed formats or hops, or a label
      outside the label map.
    NonFiniteError: some clip's embeddings hold NaN or Inf (float32 records
      of another tool): an error naming the clips, never a silent skip, so
      that training and evaluation always see every clip they were given.
  """
  files = records.expand_file_pattern(file_pattern)
  if embedding_format is None:
    embedding_format = records.detect_embedding_format(files[0])
  ids, clips, label_lists, hops = [], [], [], set()
  for record in records.read_records(files, dequantize=True,
                                     embedding_format=embedding_format,
                                     params=params):
    ids.append(record['video_id'])
    clips.append(np.asarray(record['embeddings'], np.float32))
    label_lists.append(record['labels'])
    hops.add(round(float(record['example_hop_seconds']), 4))
  if not ids:
    raise ValueError(f'no records in {len(files)} file(s) matching '
                     f'{file_pattern!r}')
  if len(hops) > 1:
    raise ValueError(
        f'records matching {file_pattern!r} mix example hops {sorted(hops)}; '
        'a classifier must be trained on one hop')
  clip_set = from_clips(ids, clips, label_lists, label_map,
                         (params.embedding_size,))
  bad = nonfinite_clip_ids(clip_set)
  if bad:
    raise NonFiniteError(
        f'{len(bad)} clip(s) in {file_pattern!r} hold NaN or Inf embeddings: '
        f'{describe_ids(bad)}; re-extract them (tools.extract refuses such '
        'audio) or leave their records out')
  empty = int(np.sum(clip_set.num_examples == 0))
  if empty:
    logging.warning('%d of %d clips have no embeddings (shorter than one '
                    'example)', empty, len(clip_set))
  logging.info('read %d clips (%d examples, %s embeddings) from %d files',
               len(clip_set), len(clip_set.values), embedding_format,
               len(files))
  return clip_set, RecordInfo(embedding_format=embedding_format,
                              example_hop_seconds=hops.pop())


def _id_uniforms(ids: Sequence[str], seed: int) -> np.ndarray:
  """[num_clips] float64 in [0, 1): a hash of each id and the seed."""
  out = np.empty(len(ids), np.float64)
  for i, clip_id in enumerate(ids):
    digest = hashlib.sha256(f'{seed}:{clip_id}'.encode('utf-8')).digest()
    out[i] = int.from_bytes(digest[:8], 'big') / 2.0**64
  return out


def _split_keys(ids: Sequence[str], groups: Optional[Mapping[str, str]]):
  """What each clip's split is hashed from: its group's name, else its id."""
  if not groups:
    return ids
  return [groups.get(clip_id, clip_id) for clip_id in ids]


def fold_assignment(ids: Sequence[str], num_folds: int,
                    test_fraction: float = 0.0, seed: int = 0,
                    groups: Optional[Mapping[str, str]] = None) -> np.ndarray:
  """Assigns each clip to one of `num_folds` folds, or to the test split.

  The hash is `split_assignment`'s: with the same seed and test fraction the
  test clips are exactly those of a single-model split, so models trained
  either way are measured on the same held-out clips. The other clips fall
  into folds of equal expected size.

  Args:
    ids: clip ids.
    num_folds: number of folds, >= 2.
    test_fraction: fraction in [0, 1) held out as the test split.
    seed: changes the assignment.
    groups: clip id -> group name (`vggish.analysis.duplicates.group_ids`):
      clips of one group fall into one fold (or all into the test split).

  Returns:
    [num_clips] int64: the fold 0..num_folds-1, or -1 for a test clip.

  Raises:
    ValueError: for fewer than two folds or a fraction out of range.
  """
  if num_folds < 2:
    raise ValueError(f'k-fold training needs at least 2 folds, got '
                     f'{num_folds}')
  if not 0 <= test_fraction < 1:
    raise ValueError(f'the test fraction must lie in [0, 1), got '
                     f'{test_fraction}')
  u = _id_uniforms(_split_keys(ids, groups), seed)
  folds = np.floor((u - test_fraction) / (1.0 - test_fraction) *
                   num_folds).astype(np.int64)
  return np.where(u < test_fraction, -1, np.minimum(folds, num_folds - 1))


def split_assignment(ids: Sequence[str], validation_fraction: float = 0.0,
                     test_fraction: float = 0.0, seed: int = 0,
                     groups: Optional[Mapping[str, str]] = None) -> np.ndarray:
  """Assigns each clip to 'train', 'validation' or 'test' by a hash of its id.

  A clip's split depends only on its id and the seed, not on file order or on
  which other clips are present, so `classifier.evaluate` can find the same
  held-out clips again, and segments sharing a video id stay together (no
  leakage between splits). Fractions are met in expectation.

  Args:
    ids: clip ids.
    validation_fraction, test_fraction: fractions in [0, 1), summing to < 1.
    seed: changes the assignment.
    groups: clip id -> group name (`vggish.analysis.duplicates.group_ids`):
      clips of one group (near-duplicates) fall into one split, hashed by
      the group's name; clips in no group by their own id.

  Returns:
    [num_clips] array of split names (object dtype).

  Raises:
    ValueError: for fractions out of range.
  """
  if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and
          validation_fraction + test_fraction < 1):
    raise ValueError(
        'validation and test fractions must lie in [0, 1) and sum to less '
        f'than 1, got {validation_fraction} and {test_fraction}')
  out = np.empty(len(ids), dtype=object)
  for i, u in enumerate(_id_uniforms(_split_keys(ids, groups), seed)):
    if u < test_fraction:
      out[i] = TEST
    elif u < test_fraction + validation_fraction:
      out[i] = VALIDATION
    else:
      out[i] = TRAIN
  return out


# ------------------------------------------------------------------ audio


def read_audio_csv(csv_path, audio_dir, label_map: labels_lib.LabelMap
                   ) -> Tuple[List[str], List[str], List[List[int]]]:
  """Reads a Freesound-style `fname,labels` CSV, as `tools.extract` does.

  Args:
    csv_path: CSV with `fname` and `labels` (comma-separated names) columns.
    audio_dir: directory `fname` is relative to (None: the CSV's directory).
    label_map: the classes.

  Returns:
    (ids: fname without extension, as extraction names records; paths;
    class index lists).

  Raises:
    ValueError: a missing CSV, column or file, or an unknown label.
  """
  inputs = corpus.read_input_csv(csv_path, audio_dir)
  if not inputs:
    raise ValueError(f'{csv_path}: no rows')
  missing = [item.path for item in inputs if item.error]
  if missing:
    raise ValueError(f'{len(missing)} audio file(s) listed in {csv_path} do '
                     f'not exist, e.g. {missing[0]!r}; check --audio_dir')
  label_lists = []
  for item in inputs:
    try:
      label_lists.append(label_map.encode(list(item.labels)))
    except ValueError as e:
      raise ValueError(f'{csv_path}, {item.video_id}: {e}') from None
  return ([item.video_id for item in inputs], [item.path for item in inputs],
          label_lists)


def audio_to_examples(path, params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """An audio file's VGGish input: float32 [n, 96, 64] log-mel examples.

  Upstream's float64 numpy frontend (`vggish.frontend`), after
  `params.short_clip_policy`, cast to float32 as the model takes it.

  Raises:
    vggish.audio_io.AudioReadError: unreadable file.
  """
  waveform = audio_io.load_waveform(path, params)
  return frontend.waveform_to_examples(
      waveform, params.sample_rate, params).astype(np.float32)


def load_audio(ids: Sequence[str], paths: Sequence[str], label_lists,
               label_map: labels_lib.LabelMap,
               params: Params = DEFAULT_PARAMS,
               failures: Optional[List[Tuple[str, str]]] = None) -> ClipSet:
  """Computes the log-mel examples of audio files once, into memory.

  An unreadable file does not stop training: it is left out with a warning
  naming it and the reason (and appended to `failures`).

  Args:
    ids: clip ids.
    paths: the audio files.
    label_lists: class indices per file.
    label_map: the classes.
    params: frontend hyperparameters (hop, short-clip policy).
    failures: optional list that receives (path, reason) per skipped file.

  Returns:
    A ClipSet of float32 [*, 96, 64] examples of the readable files.

  Raises:
    ValueError: no file could be read.
  """
  kept_ids, clips, kept_labels, skipped = [], [], [], []
  for clip_id, path, clip_labels in zip(ids, paths, label_lists):
    try:
      clips.append(audio_to_examples(path, params))
    except audio_io.AudioReadError as e:
      logging.warning('skipping %s: %s', path, e)
      skipped.append((os.fspath(path), str(e)))
      continue
    kept_ids.append(clip_id)
    kept_labels.append(clip_labels)
  if failures is not None:
    failures.extend(skipped)
  if not clips:
    raise ValueError(f'none of the {len(skipped)} audio files could be read '
                     f'(first: {skipped[0][1] if skipped else "no files"})')
  if skipped:
    logging.warning('%d of %d audio files could not be read and are left out',
                    len(skipped), len(skipped) + len(clips))
  shape = (params.example_window_length, params.num_mel_bins)
  clip_set = from_clips(kept_ids, clips, kept_labels, label_map, shape)
  warn_empty_clips(clip_set.num_examples, params)
  return clip_set


def warn_empty_clips(num_examples: np.ndarray, params: Params) -> None:
  """Logs how many audio clips gave no example (under the short-clip policy)."""
  empty = int(np.sum(num_examples == 0))
  if empty:
    logging.warning('%d of %d clips are shorter than one example (%.3f s) '
                    'and have no examples under short_clip_policy=%r',
                    empty, len(num_examples), params.min_samples_per_example /
                    params.sample_rate, params.short_clip_policy)


def feature_statistics(clip_set: ClipSet) -> Dict[str, np.ndarray]:
  """Per-feature mean and std of every example (for input standardization)."""
  values = clip_set.values.reshape(len(clip_set.values), -1)
  if len(values) == 0:
    raise ValueError('no examples to compute statistics on')
  mean = values.mean(axis=0)
  std = np.maximum(values.std(axis=0), 1e-3)
  return {'mean': mean.astype(np.float32), 'std': std.astype(np.float32)}
