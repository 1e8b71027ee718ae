"""Log-mel examples of an audio corpus on disk: computed once, streamed to training.

Fine-tuning reads every clip's VGGish input, float32 [n, 96, 64] log-mel
examples (24.6 kB per example), many times. In memory that is 4 GB for
FSDKaggle2019 and impossible for AudioSet; recomputing them every epoch costs
the frontend's time again. So `build` computes each audio file's examples once
with the numpy frontend (`classifier.data.audio_to_examples`, in a pool of
`vggish.workers`) into TFRecord shards, and an `ExampleStore` streams them
back through tf.data: memory holds only the clips' metadata (ids, multi-hot
labels, lengths) and a bounded number of clips in flight, whatever the
corpus size.

A store directory holds:

- `store_config.json`: the frontend settings that shaped the examples. A
  store is reused only with the same settings; other settings are an error
  naming the difference (use another directory).
- `examples-NNNNN.tfrecord`: shards of `tf.train.Example`s, one per clip:

  | feature | type | meaning |
  |---|---|---|
  | `key` | int64 | unique in the store: shard number * 2**20 + position |
  | `id` | bytes | the clip id of the run that computed it (informative) |
  | `num_examples` | int64 | n |
  | `examples` | bytes | float32 [n, 96, 64], little-endian, C order: exact |

  A shard is written as `NAME.tmp` and renamed when complete.
- `index.csv`: one row per audio file, `key,id,path,size,mtime_ns,
  num_examples,shard`; a file is reused while its absolute path, size and
  modification time match its row, and recomputed otherwise. Rows are
  appended (one write, fsynced) right after their shard is renamed, so a row
  always points at a complete shard, and an interrupted build resumes where
  it stopped: at the next start leftover `.tmp` files, rows whose shard is
  gone and shards no row points to are removed.

Labels are not taken from the records: a view's labels are those of the CSV
it was built for, so a relabelled CSV, or a second CSV (validation) over the
same audio, recomputes nothing. Unreadable files are not stored: each build
tries them again and returns them with the reason (`BuildResult.failures`).
A file that changed leaves its old record behind in its shard (skipped when
reading) until every record of that shard is superseded.
"""

import collections
import csv
import dataclasses
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from classifier import data as data_lib
from vggish import audio_io
from vggish import files as files_lib
from vggish import progress as progress_lib
from vggish import workers
from vggish.params import DEFAULT_PARAMS, Params

FORMAT_VERSION = 1
CONFIG_NAME = 'store_config.json'
INDEX_NAME = 'index.csv'
INDEX_FIELDS = ('key', 'id', 'path', 'size', 'mtime_ns', 'num_examples',
                'shard')
SHARD_PREFIX = 'examples-'
SHARD_SUFFIX = '.tfrecord'
TEMP_SUFFIX = '.tmp'
LOCK_NAME = '.store.lock'
_SHARD_RE = re.compile(re.escape(SHARD_PREFIX) + r'(\d{5,})' +
                       re.escape(SHARD_SUFFIX) + '$')
# A record's key is shard number << _KEY_BITS | position in the shard.
_KEY_BITS = 20
# About 60 MB per shard of 10 s clips: enough shards for the interleaved
# reader to mix, few enough files.
DEFAULT_RECORDS_PER_SHARD = 256
# Training clips held for shuffling (each at most `max_examples` examples,
# 250 kB at 10): bounds memory, whatever the corpus size.
DEFAULT_SHUFFLE_BUFFER = 512
# Shards read at once.
_CYCLE_LENGTH = 8
# The frontend parameters that shape the examples (`vggish.params`).
_FRONTEND_FIELDS = ('sample_rate', 'stft_window_seconds', 'stft_hop_seconds',
                    'num_mel_bins', 'mel_min_hz', 'mel_max_hz', 'log_offset',
                    'example_window_seconds', 'example_hop_seconds',
                    'short_clip_policy')


def store_settings(params: Params) -> Dict[str, object]:
  """What `store_config.json` holds: the settings that shape the examples."""
  return {'format_version': FORMAT_VERSION, 'frontend': 'numpy',
          'dtype': 'float32',
          'feature_shape': [params.example_window_length, params.num_mel_bins],
          'params': {name: getattr(params, name) for name in _FRONTEND_FIELDS}}


def shard_name(number: int) -> str:
  return f'{SHARD_PREFIX}{number:05d}{SHARD_SUFFIX}'


# ------------------------------------------------------------ record schema


def serialize(key: int, clip_id: str, examples: np.ndarray) -> bytes:
  """One clip's record (see the module doc); `examples` float32 [n, 96, 64]."""
  values = np.ascontiguousarray(examples, dtype='<f4')
  feature = {
      'key': tf.train.Feature(int64_list=tf.train.Int64List(value=[key])),
      'id': tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[clip_id.encode('utf-8')])),
      'num_examples': tf.train.Feature(
          int64_list=tf.train.Int64List(value=[len(values)])),
      'examples': tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[values.tobytes()])),
  }
  return tf.train.Example(features=tf.train.Features(
      feature=feature)).SerializeToString()


_KEY_SPEC = {'key': tf.io.FixedLenFeature([], tf.int64)}
_RECORD_SPEC = {'num_examples': tf.io.FixedLenFeature([], tf.int64),
                'examples': tf.io.FixedLenFeature([], tf.string)}


def parse_examples(serialized: tf.Tensor,
                   feature_shape: Tuple[int, int]) -> tf.Tensor:
  """A record's examples, float32 [n, *feature_shape] (inside tf.data)."""
  record = tf.io.parse_single_example(serialized, _RECORD_SPEC)
  values = tf.io.decode_raw(record['examples'], tf.float32,
                            little_endian=True)  # [n * 96 * 64]
  return tf.reshape(values, [-1, *feature_shape])  # [n, 96, 64]


# ------------------------------------------------------------------ index


@dataclasses.dataclass(frozen=True)
class IndexRow:
  """One stored audio file (see the module doc)."""
  key: int
  id: str
  path: str
  size: int
  mtime_ns: int
  num_examples: int
  shard: str

  def as_fields(self) -> Tuple[str, ...]:
    return tuple(str(getattr(self, name)) for name in INDEX_FIELDS)

  @classmethod
  def from_fields(cls, fields: Sequence[str]) -> 'IndexRow':
    if len(fields) != len(INDEX_FIELDS):
      raise ValueError(f'expected {len(INDEX_FIELDS)} fields')
    key, clip_id, path, size, mtime_ns, num_examples, shard = fields
    return cls(int(key), clip_id, path, int(size), int(mtime_ns),
               int(num_examples), shard)


def _format_rows(rows, header: bool = False) -> bytes:
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  if header:
    writer.writerow(INDEX_FIELDS)
  writer.writerows(row.as_fields() for row in rows)
  return buffer.getvalue().encode('utf-8')


def _fsync_dir(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  except OSError:
    pass  # Not every filesystem syncs directories; the rename stands.
  finally:
    os.close(fd)


class _Index:
  """The index of a store: latest row per path, kept in an append-only file."""

  def __init__(self, directory: str):
    self.directory = directory
    self.path = os.path.join(directory, INDEX_NAME)
    self.rows: Dict[str, IndexRow] = {}
    for row in self._read():
      self.rows[row.path] = row  # A later row wins.

  def _read(self) -> List[IndexRow]:
    if not os.path.exists(self.path):
      return []
    with open(self.path, newline='', encoding='utf-8') as f:
      lines = f.read().split('\n')
    if lines[-1]:
      # Every append ends with a newline: an unterminated line is torn.
      logging.warning('%s: dropping an incomplete last line', self.path)
    lines.pop()
    rows = []
    for number, fields in enumerate(csv.reader(lines)):
      if number == 0 and tuple(fields) == INDEX_FIELDS:
        continue
      try:
        rows.append(IndexRow.from_fields(fields))
      except ValueError:
        logging.warning('%s: dropping a malformed line %r', self.path,
                        ','.join(fields))
    return rows

  def append(self, rows: Sequence[IndexRow]) -> None:
    """Appends rows in one write and fsyncs; they win over older rows."""
    files_lib.append_durably(self.path, _format_rows(rows))
    for row in rows:
      self.rows[row.path] = row

  def compact(self) -> None:
    """Rewrites the file with one row per path (temp file + rename)."""
    tmp = self.path + TEMP_SUFFIX
    with open(tmp, 'wb') as f:
      f.write(_format_rows(self.rows.values(), header=True))
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, self.path)
    _fsync_dir(self.directory)

  def clean(self) -> None:
    """Removes leftovers of an interrupted build (see the module doc)."""
    names = set(os.listdir(self.directory))
    for name in names:
      if name.endswith(SHARD_SUFFIX + TEMP_SUFFIX):
        os.remove(os.path.join(self.directory, name))
    shards = {name for name in names if _SHARD_RE.match(name)}
    gone = [path for path, row in self.rows.items() if row.shard not in shards]
    for path in gone:
      del self.rows[path]
    if gone:
      logging.warning('%s: %d indexed clips point at missing shards; they are '
                      'computed again', self.directory, len(gone))
    used = {row.shard for row in self.rows.values()}
    for name in sorted(shards - used):
      # Written by a build killed before its rows were appended, or every
      # record superseded: nothing points here.
      os.remove(os.path.join(self.directory, name))
    self.compact()

  def next_shard_number(self) -> int:
    numbers = [int(_SHARD_RE.match(name).group(1))
               for name in os.listdir(self.directory) if _SHARD_RE.match(name)]
    return max(numbers, default=-1) + 1


class _Lock:
  """An exclusive `flock` on a store: two builds would mix shards."""

  def __init__(self, directory: str):
    self._path = os.path.join(directory, LOCK_NAME)
    self._fd = None

  def __enter__(self):
    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(self._fd)
      raise ValueError(
          f'another run is building the example store {os.path.dirname(self._path)}; '
          'wait for it or pass another --example_store') from None
    return self

  def __exit__(self, *exc_info):
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)


def _check_config(directory: str, params: Params) -> None:
  """Writes store_config.json, or checks that it matches `params`."""
  settings = store_settings(params)
  path = os.path.join(directory, CONFIG_NAME)
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      previous = json.load(f)
    if previous != json.loads(json.dumps(settings)):
      differences = [
          f'{name} {previous.get("params", {}).get(name)!r} (now {value!r})'
          for name, value in settings['params'].items()
          if previous.get('params', {}).get(name) != value]
      raise ValueError(
          f'the example store {directory} was made with other settings: '
          f'{", ".join(differences) or previous}; pass another '
          '--example_store, or delete that directory to rebuild it')
    return
  tmp = path + TEMP_SUFFIX
  with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(settings, f, indent=2)
    f.write('\n')
  os.replace(tmp, path)


class _ShardWriter:
  """Writes records into `examples-NNNNN.tfrecord.tmp`; renames full shards."""

  def __init__(self, index: _Index, records_per_shard: int):
    self._index = index
    self._per_shard = records_per_shard
    self._number = index.next_shard_number()
    self._writer = None
    self._rows: List[IndexRow] = []

  @property
  def _final_path(self) -> str:
    return os.path.join(self._index.directory, shard_name(self._number))

  def add(self, clip_id: str, path: str, stat: os.stat_result,
          examples: np.ndarray) -> IndexRow:
    if self._writer is None:
      self._writer = tf.io.TFRecordWriter(self._final_path + TEMP_SUFFIX)
    key = (self._number << _KEY_BITS) | len(self._rows)
    self._writer.write(serialize(key, clip_id, examples))
    row = IndexRow(key=key, id=clip_id, path=path, size=stat.st_size,
                   mtime_ns=stat.st_mtime_ns, num_examples=len(examples),
                   shard=shard_name(self._number))
    self._rows.append(row)
    if len(self._rows) >= self._per_shard:
      self.commit()
    return row

  def commit(self) -> None:
    """Completes the shard: close, fsync, rename, then index its rows."""
    if self._writer is None:
      return
    writer, self._writer = self._writer, None
    writer.close()
    final = self._final_path
    fd = os.open(final + TEMP_SUFFIX, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)
    os.replace(final + TEMP_SUFFIX, final)
    _fsync_dir(self._index.directory)
    # A kill before this append leaves a shard no row points to, removed by
    # the next build (`_Index.clean`): its files are computed again.
    self._index.append(self._rows)
    self._rows = []
    self._number += 1

  def abort(self) -> None:
    """Drops the incomplete shard (best effort: another error is on its way)."""
    writer, self._writer = self._writer, None
    self._rows = []
    if writer is not None:
      try:
        writer.close()
        os.remove(self._final_path + TEMP_SUFFIX)
      except (OSError, tf.errors.OpError):
        pass  # The next build deletes leftover .tmp files.


# ------------------------------------------------------------------ build


def _compute_examples(path: str, params: Params) -> np.ndarray:
  """A file's float32 [n, 96, 64] examples (a pool task: picklable)."""
  return data_lib.audio_to_examples(path, params)


@dataclasses.dataclass
class BuildResult:
  """What `build` did.

  Attributes:
    store: the clips asked for that could be read, in the order given.
    failures: (path as given, reason) of the unreadable files, in the order
      given.
    num_computed: files whose examples this build computed.
    num_reused: files found in the store.
    seconds: wall time.
  """
  store: 'ExampleStore'
  failures: List[Tuple[str, str]]
  num_computed: int
  num_reused: int
  seconds: float


def build(directory, ids: Sequence[str], paths: Sequence[str], label_lists,
          label_map, params: Params = DEFAULT_PARAMS, *,
          num_workers: Optional[int] = None, worker_kind: str = workers.AUTO,
          records_per_shard: int = DEFAULT_RECORDS_PER_SHARD,
          shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
          show_progress: bool = True) -> BuildResult:
  """Makes sure the store holds the files' examples; a view of those clips.

  Files already stored (same absolute path, size and modification time) are
  reused; the others are computed, in a pool of frontend workers, and
  written in a fixed pseudo-random order (a hash of the path), so that each
  shard mixes the corpus' classes whatever the CSV's order. An unreadable
  file does not stop the build: it is left out with a warning naming it and
  the reason.

  Args:
    directory: the store (created if needed; reused across runs).
    ids: clip ids, distinct.
    paths: their audio files.
    label_lists: class indices per clip.
    label_map: the classes (`vggish.labels.LabelMap` with `multi_hot`).
    params: frontend settings (hop, short-clip policy).
    num_workers: frontend workers (default: one per usable core).
    worker_kind: 'thread', 'process' or 'auto' (see `vggish.workers`).
    records_per_shard: clips per shard, < 2**20.
    shuffle_buffer: training clips held for shuffling by the view.
    show_progress: files, files/s and ETA on stderr.

  Returns:
    A BuildResult.

  Raises:
    ValueError: mismatched arguments, a file listed twice, a store made with
      other settings or being built by another run, or no file readable.
    OSError: the store cannot be written; what was completed is kept, and a
      rerun resumes.
  """
  if not len(ids) == len(paths) == len(label_lists):
    raise ValueError('ids, paths and label_lists must have the same length')
  if not 1 <= records_per_shard < 2**_KEY_BITS:
    raise ValueError(f'records_per_shard must lie in [1, {2**_KEY_BITS}), got '
                     f'{records_per_shard}')
  num_workers = (workers.default_num_workers() if num_workers is None else
                 num_workers)
  kind = workers.resolve_kind(worker_kind, num_workers)
  directory = os.path.abspath(os.fspath(directory))
  absolute = [os.path.abspath(os.fspath(p)) for p in paths]
  if len(set(absolute)) != len(absolute):
    duplicate = next(p for p, n in collections.Counter(absolute).items()
                     if n > 1)
    raise ValueError(f'{duplicate} is listed twice; list each file once')
  start = time.monotonic()
  os.makedirs(directory, exist_ok=True)
  failed: Dict[int, str] = {}
  rows: Dict[int, IndexRow] = {}
  with _Lock(directory):
    _check_config(directory, params)
    index = _Index(directory)
    index.clean()
    todo = []
    for i, path in enumerate(absolute):
      try:
        stat = os.stat(path)
      except OSError as e:
        failed[i] = f'cannot read the file: {e.strerror}'
        continue
      row = index.rows.get(path)
      if (row is not None and row.size == stat.st_size and
          row.mtime_ns == stat.st_mtime_ns):
        rows[i] = row
      else:
        todo.append((i, stat))
    todo.sort(key=lambda item: hashlib.sha256(
        absolute[item[0]].encode('utf-8')).digest())
    if rows:
      logging.info('example store %s: %d of %d files already stored',
                   directory, len(rows), len(absolute))
    writer = _ShardWriter(index, records_per_shard)
    try:
      with workers.make_pool(num_workers, kind) as pool, progress_lib.Progress(
          total=len(todo), unit='files', desc='example store',
          enabled=show_progress and bool(todo)) as bar:
        _compute(todo, ids, absolute, params, pool, max(4, 2 * num_workers),
                 writer, rows, failed, bar)
      writer.commit()
    except BaseException:
      writer.abort()
      raise
    finally:
      try:
        index.compact()
      except OSError:
        pass  # The error on its way out says more; the next build compacts.
  failures = [(os.fspath(paths[i]), failed[i]) for i in sorted(failed)]
  kept = sorted(rows)
  if not kept:
    raise ValueError(f'none of the {len(failures)} audio files could be read '
                     f'(first: {failures[0][1] if failures else "no files"})')
  if failures:
    logging.warning('%d of %d audio files could not be read and are left out',
                    len(failures), len(absolute))
  store = ExampleStore(
      directory, ids=[ids[i] for i in kept],
      labels=label_map.multi_hot([label_lists[i] for i in kept]),
      num_examples=[rows[i].num_examples for i in kept],
      keys=[rows[i].key for i in kept], shards=[rows[i].shard for i in kept],
      feature_shape=(params.example_window_length, params.num_mel_bins),
      shuffle_buffer=shuffle_buffer)
  data_lib.warn_empty_clips(store.num_examples, params)
  seconds = time.monotonic() - start
  num_computed = sum(1 for i, _ in todo if i in rows)
  logging.info('example store %s: %d files computed, %d reused, %d failed '
               '(%.1f s)', directory, num_computed, len(kept) - num_computed,
               len(failures), seconds)
  return BuildResult(store=store, failures=failures,
                     num_computed=num_computed,
                     num_reused=len(kept) - num_computed, seconds=seconds)


def _compute(todo, ids, absolute, params, pool, prefetch, writer, rows,
             failed, bar) -> None:
  """Computes `todo` in `pool`, `prefetch` files ahead, and writes in order."""
  pending = collections.deque()
  items = iter(todo)

  def refill():
    while len(pending) < prefetch:
      item = next(items, None)
      if item is None:
        return
      pending.append((item, pool.submit(_compute_examples, absolute[item[0]],
                                        params)))

  try:
    refill()
    while pending:
      (i, stat), future = pending.popleft()
      try:
        examples = future.result()
      except audio_io.AudioReadError as e:
        logging.warning('skipping %s: %s', absolute[i], e)
        failed[i] = str(e)
        bar.update(1)
      else:
        rows[i] = writer.add(ids[i], absolute[i], stat, examples)
        bar.update(1, examples=len(examples))
      refill()
  finally:
    for _, future in pending:  # Ctrl-C or an error: start nothing more.
      future.cancel()


# ------------------------------------------------------------------- views


class ExampleStore:
  """Some clips of a store: their metadata in memory, examples streamed.

  Offers what `classifier.training.fit` and `Predictor` read from a
  `classifier.data.ClipSet` (`ids`, `labels`, `num_examples`, `subset`,
  `training_batches`, `inference_batches`), so fine-tuning trains from disk.

  Attributes:
    directory: the store.
    ids: [num_clips] object, clip ids.
    labels: [num_clips, num_classes] float32 0/1.
    num_examples: [num_clips] int64.
    keys: [num_clips] int64, the clips' record keys.
    shards: [num_clips] object, the shard holding each clip.
    feature_shape: (96, 64).
    shuffle_buffer: training clips held for shuffling.
  """

  def __init__(self, directory: str, ids, labels, num_examples, keys, shards,
               feature_shape: Tuple[int, int] = (96, 64),
               shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER):
    self.directory = directory
    self.ids = np.asarray(ids, dtype=object)
    self.labels = np.asarray(labels, np.float32)
    self.num_examples = np.asarray(num_examples, np.int64)
    self.keys = np.asarray(keys, np.int64)
    self.shards = np.asarray(shards, dtype=object)
    self.feature_shape = tuple(feature_shape)
    self.shuffle_buffer = max(1, int(shuffle_buffer))
    if not (len(self.ids) == len(self.labels) == len(self.num_examples) ==
            len(self.keys) == len(self.shards)):
      raise ValueError('ids, labels, num_examples, keys and shards disagree '
                       'on the number of clips')
    if len(np.unique(self.keys)) != len(self.keys):
      raise ValueError('an example store view holds each clip once')
    self._table = None
    self._inference = {}

  def __len__(self):
    return len(self.ids)

  @property
  def num_classes(self) -> int:
    return self.labels.shape[1]

  def subset(self, indices) -> 'ExampleStore':
    """The clips at `indices` (distinct ints, or a boolean mask), in that order."""
    indices = np.asarray(indices)
    if indices.dtype == bool:
      indices = np.flatnonzero(indices)
    indices = indices.astype(np.int64)
    return ExampleStore(self.directory, self.ids[indices],
                        self.labels[indices].reshape(-1, self.num_classes),
                        self.num_examples[indices], self.keys[indices],
                        self.shards[indices], self.feature_shape,
                        self.shuffle_buffer)

  # A record's position in this view, -1 for records of other clips.
  def _positions(self) -> tf.lookup.StaticHashTable:
    if self._table is None:
      self._table = tf.lookup.StaticHashTable(
          tf.lookup.KeyValueTensorInitializer(
              tf.constant(self.keys, tf.int64),
              tf.range(len(self.keys), dtype=tf.int64)), default_value=-1)
    return self._table

  def _records(self, shard_seed: Optional[int]) -> tf.data.Dataset:
    """(position, serialized) of this view's clips, shard by shard."""
    names = sorted(set(self.shards))
    files = tf.data.Dataset.from_tensor_slices(
        [os.path.join(self.directory, name) for name in names])
    if shard_seed is not None:
      files = files.shuffle(len(names), seed=shard_seed)
    records = files.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(names), _CYCLE_LENGTH),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    table = self._positions()

    def locate(serialized):
      key = tf.io.parse_single_example(serialized, _KEY_SPEC)['key']
      return table.lookup(key), serialized

    # Only the key is parsed before the filter: records of other clips (the
    # other splits) never have their examples copied.
    return records.map(locate, num_parallel_calls=tf.data.AUTOTUNE).filter(
        lambda position, serialized: position >= 0)

  def _padded(self, examples):
    """(examples [max(1, n), ...], mask [max(1, n)]): an empty clip is one
    masked zero example, so batches keep a valid shape (as `ClipSet`)."""
    n = tf.shape(examples)[0]
    t = tf.maximum(n, 1)
    examples = tf.pad(examples, [[0, t - n], [0, 0], [0, 0]])
    return examples, tf.sequence_mask(n, t, dtype=tf.float32)

  def training_dataset(self, batch_size: int,
                       max_examples: Optional[int] = None, seed: int = 0,
                       counts: Optional[np.ndarray] = None
                       ) -> tf.data.Dataset:
    """One epoch of shuffled, padded training batches.

    Shards are read in a seeded order, several at once; each clip is cut to
    a random window of `max_examples` (stateless, from `seed` and its place
    in the stream), shuffled in a buffer of `shuffle_buffer` clips and
    batched, padded to the batch's longest clip.

    Args:
      batch_size: clips per batch.
      max_examples: longer clips are cut to a random window of this many
        examples (None: whole clips).
      seed: seeds shard order, windows and shuffling.
      counts: [num_clips] int, how often each clip appears in the epoch
        (balanced sampling); None: once each.

    Returns:
      A dataset of (features [b, t, 96, 64] float32, mask [b, t] float32,
      labels [b, num_classes] float32).
    """
    labels = tf.constant(self.labels)
    clips = self._records(seed)
    if counts is not None:
      counts = tf.constant(np.asarray(counts, np.int64))
      clips = clips.flat_map(
          lambda position, serialized: tf.data.Dataset.from_tensors(
              (position, serialized)).repeat(tf.gather(counts, position)))
    shape = self.feature_shape

    def decode(element, clip):
      position, serialized = clip
      examples = parse_examples(serialized, shape)  # [n, 96, 64]
      if max_examples is not None:
        n = tf.shape(examples, out_type=tf.int64)[0]
        take = tf.minimum(n, max_examples)
        offset = tf.random.stateless_uniform(
            [], seed=tf.stack([tf.constant(seed, tf.int64), element]),
            minval=0, maxval=n - take + 1, dtype=tf.int64)
        examples = examples[offset:offset + take]
      examples, mask = self._padded(examples)
      return examples, mask, tf.gather(labels, position)

    clips = clips.enumerate().map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    clips = clips.shuffle(self.shuffle_buffer, seed=seed)
    return clips.padded_batch(
        batch_size, padded_shapes=([None, *shape], [None], [self.num_classes])
    ).prefetch(tf.data.AUTOTUNE)

  def training_batches(self, batch_size: int,
                       max_examples: Optional[int] = None,
                       rng: Optional[np.random.Generator] = None,
                       sampling: Optional[np.ndarray] = None) -> Iterator:
    """One epoch of (features, mask, labels) batches (see `training_dataset`).

    Args:
      batch_size: clips per batch.
      max_examples: random windows of at most this many examples.
      rng: numpy Generator; draws the epoch's seed (and its sample).
      sampling: [num_clips] probabilities: the epoch is `len(self)` clips
        drawn with replacement (balanced sampling); None: each clip once.

    Yields:
      ceil(len(self) / batch_size) tuples of tensors (features
      [b, t, 96, 64] float32, mask [b, t] float32, labels [b, C] float32).
    """
    if len(self) == 0:
      return iter(())
    rng = np.random.default_rng() if rng is None else rng
    seed = int(rng.integers(0, 2**31 - 1))
    counts = (None if sampling is None else
              rng.multinomial(len(self), np.asarray(sampling, np.float64)))
    return iter(self.training_dataset(batch_size, max_examples, seed, counts))

  def inference_dataset(self, examples_per_batch: int) -> tf.data.Dataset:
    """Every clip once, whole, in batches of about `examples_per_batch`.

    Clips are grouped by length (`bucket_by_sequence_length`), a group's
    batch holding `examples_per_batch // length` clips (at least one), so
    that little is padded, as `ClipSet.inference_batches` does by sorting.

    Returns:
      A dataset of (positions [b] int64, features [b, t, 96, 64] float32,
      mask [b, t] float32).
    """
    budget = max(1, int(examples_per_batch))
    lengths = np.unique(np.maximum(self.num_examples, 1))
    sizes = np.maximum(1, budget // lengths)
    first = np.flatnonzero(np.r_[True, sizes[1:] != sizes[:-1]])
    # Lengths with the same batch size share a bucket: [boundary_i,
    # boundary_i+1) holds only lengths whose batch of sizes[i] fits.
    boundaries = [int(b) for b in lengths[first[1:]]]
    batch_sizes = [int(s) for s in sizes[first]]
    shape = self.feature_shape

    def decode(position, serialized):
      examples, mask = self._padded(parse_examples(serialized, shape))
      return position, examples, mask

    clips = self._records(None).map(decode,
                                    num_parallel_calls=tf.data.AUTOTUNE)
    return clips.bucket_by_sequence_length(
        lambda position, examples, mask: tf.shape(examples)[0],
        bucket_boundaries=boundaries, bucket_batch_sizes=batch_sizes,
        padded_shapes=([], [None, *shape], [None])).prefetch(tf.data.AUTOTUNE)

  def inference_batches(self, examples_per_batch: int) -> Iterator:
    """Yields (clip indices [b] int64 numpy, features, mask), every clip once."""
    if len(self) == 0:
      return
    if examples_per_batch not in self._inference:
      self._inference[examples_per_batch] = self.inference_dataset(
          examples_per_batch)
    for positions, features, mask in self._inference[examples_per_batch]:
      yield positions.numpy(), features, mask

  def read_clips(self, indices) -> List[np.ndarray]:
    """The examples of a few clips, float32 [n_i, 96, 64] each (for checks;
    training never holds them all)."""
    indices = np.asarray(indices, np.int64)
    found = {}
    view = self.subset(indices)
    for positions, features, mask in view.inference_batches(1):
      for row, position in enumerate(positions):
        n = int(view.num_examples[position])
        found[int(position)] = features[row, :n].numpy()
    return [found[i] for i in range(len(indices))]
