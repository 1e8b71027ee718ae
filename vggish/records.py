"""THE TFRecord schema: AudioSet-layout SequenceExamples, written and read here.

One `tf.train.SequenceExample` per clip (or clip segment), exactly the layout
of the released AudioSet features (`audioset_v1_embeddings/*/*.tfrecord`):

  context:
    video_id            bytes_list  [1]  clip id (for us: the audio file's id)
    start_time_seconds  float_list  [1]
    end_time_seconds    float_list  [1]
    labels              int64_list  [k]  class indices (may be empty)
    embedding_format    bytes_list  [1]  ours: b'uint8' or b'float32'
    example_hop_seconds float_list  [1]  ours: seconds between examples
  feature_lists:
    audio_embedding     one feature per 0.96 s example:
                        uint8   -> bytes_list holding the 128 quantized bytes
                        float32 -> float_list of the 128 raw embedding values

The two extra context keys are absent from the released files; a record
without `embedding_format` is quantized ('uint8'), and without
`example_hop_seconds` has upstream's 0.96 s hop. The extraction writer
(`tools.extract`) and the classifier reader (`classifier/`) both use this
module, so the two cannot drift apart.
"""

import logging
import os
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from vggish.params import DEFAULT_PARAMS, Params

VIDEO_ID = 'video_id'
START_TIME = 'start_time_seconds'
END_TIME = 'end_time_seconds'
LABELS = 'labels'
EMBEDDING_FORMAT = 'embedding_format'
EXAMPLE_HOP = 'example_hop_seconds'
AUDIO_EMBEDDING = 'audio_embedding'

UINT8 = 'uint8'  # Postprocessed (PCA + quantized) bytes, as AudioSet.
FLOAT32 = 'float32'  # Raw model embeddings.
EMBEDDING_FORMATS = (UINT8, FLOAT32)

# Records parsed per parse op in make_dataset.
_PARSE_BATCH_SIZE = 256

FilePattern = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


class RecordFormatError(ValueError):
  """Records that do not follow this schema, or disagree in format."""


class NonFiniteEmbeddingError(ValueError):
  """Embeddings to be written hold NaN or Inf."""


def _check_format(embedding_format: str) -> str:
  if embedding_format not in EMBEDDING_FORMATS:
    raise ValueError(f'embedding_format must be one of {EMBEDDING_FORMATS}, '
                     f'got {embedding_format!r}')
  return embedding_format


# ------------------------------------------------------------------ writing


def make_sequence_example(
    video_id: str,
    embeddings: np.ndarray,
    labels: Iterable[int] = (),
    start_time_seconds: float = 0.0,
    end_time_seconds: Optional[float] = None,
    example_hop_seconds: float = DEFAULT_PARAMS.example_hop_seconds,
    params: Params = DEFAULT_PARAMS,
) -> tf.train.SequenceExample:
  """Builds one AudioSet-layout SequenceExample.

  Args:
    video_id: clip identifier (str, stored UTF-8 encoded; bytes kept as is).
    embeddings: [num_examples, 128], uint8 (postprocessed; stored as 128 bytes
      per example, exactly as AudioSet) or float (raw; stored as float32).
      num_examples may be 0 (a clip too short for one example).
    labels: class indices (non-negative ints); may be empty.
    start_time_seconds: start of the clip in its source.
    end_time_seconds: end of the clip; None derives it from the examples:
      start + (num_examples - 1) * hop + example window (start when there are
      no examples).
    example_hop_seconds: seconds between consecutive examples.
    params: hyperparameters (embedding size, example window).

  Returns:
    The tf.train.SequenceExample (`serialize` gives the bytes to write).

  Raises:
    NonFiniteEmbeddingError: float embeddings hold NaN or Inf.
    ValueError: on a wrong shape or dtype, or a negative label.
  """
  size = params.embedding_size
  embeddings = np.asarray(embeddings)
  if embeddings.ndim != 2 or embeddings.shape[1] != size:
    raise ValueError(f'embeddings must have shape [num_examples, {size}], '
                     f'got {embeddings.shape}')
  if embeddings.dtype == np.uint8:
    embedding_format = UINT8
  elif np.issubdtype(embeddings.dtype, np.floating):
    embedding_format = FLOAT32
    embeddings = embeddings.astype(np.float32)
    finite = np.isfinite(embeddings)
    if not finite.all():
      # A record is a result: NaN/Inf in it is garbage that looks like data.
      rows = np.flatnonzero(~finite.all(axis=1))
      raise NonFiniteEmbeddingError(
          f'the embeddings of {video_id!r} hold {int((~finite).sum())} NaN/Inf '
          f'value(s), in {rows.size} of {embeddings.shape[0]} example(s) (first: '
          f'example {int(rows[0])}); such a record is never written')
  else:
    raise ValueError(
        f'embeddings must be uint8 (postprocessed) or float (raw), got dtype '
        f'{embeddings.dtype}; cast quantized values with .astype(np.uint8)')
  labels = [int(label) for label in labels]
  if any(label < 0 for label in labels):
    raise ValueError(f'labels must be non-negative class indices: {labels}')
  if isinstance(video_id, str):
    video_id = video_id.encode('utf-8')
  num_examples = embeddings.shape[0]
  if end_time_seconds is None:
    end_time_seconds = start_time_seconds + (
        (num_examples - 1) * example_hop_seconds +
        params.example_window_seconds if num_examples else 0.0)

  seq = tf.train.SequenceExample()
  context = seq.context.feature
  context[VIDEO_ID].bytes_list.value.append(video_id)
  context[START_TIME].float_list.value.append(start_time_seconds)
  context[END_TIME].float_list.value.append(end_time_seconds)
  context[LABELS].int64_list.value.extend(labels)
  context[EMBEDDING_FORMAT].bytes_list.value.append(
      embedding_format.encode('ascii'))
  context[EXAMPLE_HOP].float_list.value.append(example_hop_seconds)
  # Create the list even when empty, so zero-example records keep the key.
  feature_list = seq.feature_lists.feature_list[AUDIO_EMBEDDING]
  for row in embeddings:
    if embedding_format == UINT8:
      feature_list.feature.add().bytes_list.value.append(row.tobytes())
    else:
      feature_list.feature.add().float_list.value.extend(row)
  return seq


def serialize(sequence_example: tf.train.SequenceExample) -> bytes:
  """A record's bytes, the same in every process.

  The context is a protobuf map; protobuf's default serialization writes map
  entries in hash order, which changes from one process to the next, so the
  same record would have different bytes in two runs (or two Beam workers).
  Deterministic serialization sorts the keys; readers see the same values
  either way.
  """
  return sequence_example.SerializeToString(deterministic=True)


def write_records(path: Union[str, os.PathLike],
                  sequence_examples: Iterable[Union[tf.train.SequenceExample,
                                                    bytes]]) -> int:
  """Writes records atomically: to `path + '.tmp'`, renamed when complete.

  A crash never leaves a truncated file under `path`, so a resumed extraction
  can trust every file that exists.

  Args:
    path: destination .tfrecord file (local or any tf.io.gfile filesystem).
    sequence_examples: SequenceExamples or their serialized bytes.

  Returns:
    The number of records written.
  """
  path = os.fspath(path)
  tmp_path = path + '.tmp'
  count = 0
  try:
    with tf.io.TFRecordWriter(tmp_path) as writer:
      for seq in sequence_examples:
        writer.write(seq if isinstance(seq, bytes) else serialize(seq))
        count += 1
    tf.io.gfile.rename(tmp_path, path, overwrite=True)
  except BaseException:
    if tf.io.gfile.exists(tmp_path):
      tf.io.gfile.remove(tmp_path)
    raise
  return count


# ------------------------------------------------------------------ reading


def _feature_specs(embedding_format: str, params: Params):
  """Context and sequence specs for batched parsing."""
  context = {
      VIDEO_ID: tf.io.FixedLenFeature([], tf.string, default_value=''),
      START_TIME: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
      END_TIME: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
      LABELS: tf.io.RaggedFeature(tf.int64),
      EXAMPLE_HOP: tf.io.FixedLenFeature(
          [], tf.float32, default_value=DEFAULT_PARAMS.example_hop_seconds),
  }
  # Records have different numbers of examples; in a batch the parser pads to
  # the longest and reports each record's length.
  if embedding_format == UINT8:
    sequence = tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
  else:
    sequence = tf.io.FixedLenSequenceFeature([params.embedding_size],
                                             tf.float32, allow_missing=True)
  return context, {AUDIO_EMBEDDING: sequence}


def _parse_batch(serialized, embedding_format: str, dequantize: bool,
                 params: Params, sources=None) -> Dict[str, tf.Tensor]:
  """Parses a batch of records (graph code).

  Parsing records in batches rather than one by one costs a small fraction of
  the per-record parse ops and tf.data per-element overhead.

  Args:
    serialized: tf.string [b].
    embedding_format: 'uint8' or 'float32'.
    dequantize: as in `parse_sequence_example`.
    params: hyperparameters.
    sources: optional tf.string [b], each record's file (for error messages).

  Returns:
    Dict: scalars as [b] tensors, `labels` tf.RaggedTensor int64 [b, (k)],
    `embeddings` tf.RaggedTensor [b, (n), 128], `num_examples` int32 [b].
  """
  # Check the records' own format first: parsing bytes as floats (or the
  # reverse) would fail with an obscure type error instead.
  stored = tf.io.parse_sequence_example(
      serialized,
      context_features={
          EMBEDDING_FORMAT: tf.io.FixedLenFeature([], tf.string,
                                                  default_value=UINT8)
      })[0][EMBEDDING_FORMAT]
  wrong = tf.not_equal(stored, embedding_format)
  message = [
      'vggish.records: embedding formats must agree across files; a record '
      f'is read as {embedding_format!r} but stores', tf.boolean_mask(
          stored, wrong)[:1]
  ]
  if sources is not None:
    message += ['in file', tf.boolean_mask(sources, wrong)[:1]]
  check = tf.debugging.Assert(
      tf.logical_not(tf.reduce_any(wrong)), message, summarize=1)
  context_spec, sequence_spec = _feature_specs(embedding_format, params)
  with tf.control_dependencies([check]):
    context, sequence, lengths = tf.io.parse_sequence_example(
        serialized, context_features=context_spec,
        sequence_features=sequence_spec)
  # [b, max_n] strings or [b, max_n, 128] floats -> ragged [b, (n), ...].
  frames = tf.RaggedTensor.from_tensor(
      sequence[AUDIO_EMBEDDING], lengths=lengths[AUDIO_EMBEDDING])
  size = params.embedding_size
  if embedding_format == UINT8:
    flat = frames.flat_values  # [total] strings of 128 bytes.
    # A wrong byte count would otherwise be absorbed by the reshape below.
    check_size = tf.debugging.assert_equal(
        tf.strings.length(flat), size,
        message=f'vggish.records: audio_embedding bytes must be {size} long')
    with tf.control_dependencies([check_size]):
      values = tf.reshape(tf.io.decode_raw(flat, tf.uint8), [-1, size])
    if dequantize:
      lo, hi = params.quantize_min_val, params.quantize_max_val
      # The same float32 ops as postprocess.dequantize: q * (hi-lo)/255 + lo.
      values = (tf.cast(values, tf.float32) *
                tf.constant((hi - lo) / 255.0, tf.float32) +
                tf.constant(lo, tf.float32))
    frames = frames.with_flat_values(values)
  return {
      VIDEO_ID: context[VIDEO_ID],
      START_TIME: context[START_TIME],
      END_TIME: context[END_TIME],
      LABELS: context[LABELS],
      EXAMPLE_HOP: context[EXAMPLE_HOP],
      'embeddings': frames,
      'num_examples': tf.cast(frames.row_lengths(), tf.int32),
  }


def _unbatched(record: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """Identity map after unbatch(), which makes ragged rows plain tensors."""
  # unbatch() gives the rows of ragged [b, (n), 128] as ragged_rank-0 specs,
  # which padded_batch and friends reject; inside a map function they are
  # ordinary tensors, so passing them through one fixes the element spec.
  return dict(record)


@tf.function(reduce_retracing=True)
def _parse_function(serialized, embedding_format, dequantize, params):
  return _parse_one(serialized, embedding_format, dequantize, params)


def _parse_one(serialized, embedding_format, dequantize, params):
  batch = _parse_batch(tf.reshape(serialized, [1]), embedding_format,
                       dequantize, params)
  # Row 0 of a ragged [1, (n), ...] tensor is a dense [n, ...] tensor.
  return {key: value[0] for key, value in batch.items()}


def parse_sequence_example(serialized,
                           embedding_format: str = UINT8,
                           dequantize: bool = True,
                           params: Params = DEFAULT_PARAMS
                           ) -> Dict[str, tf.Tensor]:
  """Parses one serialized SequenceExample of this schema.

  Usable inside `tf.data.Dataset.map` (it is plain graph code there) and
  eagerly (it then runs as a tf.function). `make_dataset` parses in batches,
  which is several times cheaper for whole files.

  Args:
    serialized: scalar tf.string tensor (or bytes), one record.
    embedding_format: 'uint8' or 'float32', the format the records store
      (see `detect_embedding_format`); a record that stores the other format
      raises tf.errors.InvalidArgumentError naming both.
    dequantize: for 'uint8', map the bytes to float32 `q * 4/255 - 2` (as
      `vggish.postprocess.dequantize`); False keeps them uint8.
    params: hyperparameters (embedding size, quantization range).

  Returns:
    A dict of tensors: `video_id` string [], `start_time_seconds` and
    `end_time_seconds` float32 [], `labels` int64 [k], `example_hop_seconds`
    float32 [], `embeddings` [num_examples, 128] float32 (uint8 if not
    dequantized), `num_examples` int32 [].
  """
  _check_format(embedding_format)
  if tf.inside_function():
    return _parse_one(serialized, embedding_format, dequantize, params)
  return _parse_function(tf.convert_to_tensor(serialized, tf.string),
                         embedding_format, bool(dequantize), params)


def expand_file_pattern(file_pattern: FilePattern) -> List[str]:
  """Sorted, de-duplicated files matching a glob, a file, or a list of them.

  Raises:
    ValueError: if a pattern matches nothing.
  """
  if isinstance(file_pattern, (str, os.PathLike)):
    file_pattern = [file_pattern]
  files = set()
  for pattern in file_pattern:
    pattern = os.fspath(pattern)
    if tf.io.gfile.exists(pattern) and not tf.io.gfile.isdir(pattern):
      matches = [pattern]  # A file name that merely contains glob characters.
    else:
      matches = tf.io.gfile.glob(pattern)
    if not matches:
      raise ValueError(f'no TFRecord files match {pattern!r}')
    files.update(matches)
  if not files:
    raise ValueError('no TFRecord file patterns given')
  return sorted(files)


def raw_records(path: str) -> Iterator[bytes]:
  """The serialized records of one TFRecord file, in order (checksums checked).

  TensorFlow's record reader without tf.data: opening a `TFRecordDataset`
  costs 20-80 ms, which a resumed run or a format check pays per shard.
  """
  try:
    from tensorflow.python.lib.io import tf_record  # pylint: disable=g-direct-tensorflow-import,import-outside-toplevel
  except ImportError:  # Not public API: fall back to tf.data if it moves.
    yield from tf.data.TFRecordDataset(path).as_numpy_iterator()
    return
  yield from tf_record.tf_record_iterator(path)


def _first_record_format(path: str) -> Optional[str]:
  """The first record's embedding format, or None if the file is empty."""
  for serialized in raw_records(path):
    seq = tf.train.SequenceExample.FromString(serialized)
    if EMBEDDING_FORMAT not in seq.context.feature:
      return UINT8  # The released AudioSet files: quantized, no such key.
    value = b''.join(seq.context.feature[EMBEDDING_FORMAT].bytes_list.value)
    value = value.decode('ascii', 'replace')
    if value not in EMBEDDING_FORMATS:
      raise RecordFormatError(
          f'{path}: unknown embedding_format {value!r}; expected one of '
          f'{EMBEDDING_FORMATS}')
    return value
  return None


def detect_embedding_format(path: Union[str, os.PathLike]) -> str:
  """The embedding format of a TFRecord file, from its first record.

  Args:
    path: one .tfrecord file.

  Returns:
    The record's `embedding_format` context value, or 'uint8' when absent (the
    released AudioSet files have no such key and are quantized).

  Raises:
    RecordFormatError: if the file has no records or an unknown format.
  """
  path = os.fspath(path)
  embedding_format = _first_record_format(path)
  if embedding_format is None:
    raise RecordFormatError(
        f'{path}: no records, cannot detect its embedding format')
  return embedding_format


def _dataset_format(files: Sequence[str]) -> str:
  """Format of the first non-empty file (in-graph checks cover the rest)."""
  for path in files:
    embedding_format = _first_record_format(path)
    if embedding_format is not None:
      return embedding_format
  logging.warning('records: all %d files are empty', len(files))
  return UINT8


def make_dataset(file_pattern: FilePattern,
                 dequantize: bool = True,
                 shuffle: bool = False,
                 seed: Optional[int] = None,
                 num_parallel_reads: int = 16,
                 shuffle_buffer_size: int = 4096,
                 embedding_format: Optional[str] = None,
                 params: Params = DEFAULT_PARAMS) -> tf.data.Dataset:
  """A tf.data.Dataset of parsed records (dicts of `parse_sequence_example`).

  Args:
    file_pattern: a glob, a file, or a list of globs/files.
    dequantize: for uint8 records, yield float32 `q * 4/255 - 2`.
    shuffle: shuffle the file order and the records (buffer of
      `shuffle_buffer_size`); otherwise the order is deterministic.
    seed: seed of the shuffles.
    num_parallel_reads: files read concurrently (interleaved record by record).
    shuffle_buffer_size: records held by the record-level shuffle.
    embedding_format: 'uint8' or 'float32'; None detects it from the first
      file. Every record is checked against it while reading: mixing formats
      raises tf.errors.InvalidArgumentError naming the offending file.
    params: hyperparameters.

  Returns:
    A dataset of dicts (see `parse_sequence_example`), one per record.

  Raises:
    ValueError: if no file matches, or the format is unknown.
  """
  return _make_batched_dataset(
      file_pattern, dequantize, shuffle, seed, num_parallel_reads,
      shuffle_buffer_size, embedding_format, params).unbatch().map(
          _unbatched, num_parallel_calls=tf.data.AUTOTUNE,
          deterministic=True).prefetch(tf.data.AUTOTUNE)


def _make_batched_dataset(file_pattern, dequantize, shuffle, seed,
                          num_parallel_reads, shuffle_buffer_size,
                          embedding_format, params) -> tf.data.Dataset:
  """`make_dataset` before unbatching: dicts of `_parse_batch`."""
  files = expand_file_pattern(file_pattern)
  if embedding_format is None:
    embedding_format = _dataset_format(files)
  _check_format(embedding_format)
  names = tf.data.Dataset.from_tensor_slices(files)
  if shuffle:
    names = names.shuffle(len(files), seed=seed)
  # Each record travels with its file name, for the format check's message.
  # Deterministic even when shuffling, so that a seed reproduces the order.
  records = names.interleave(
      lambda name: tf.data.TFRecordDataset(name).map(lambda s: (name, s)),
      cycle_length=max(1, min(num_parallel_reads, len(files))),
      block_length=1,
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True)
  if shuffle:
    records = records.shuffle(shuffle_buffer_size, seed=seed)
  return records.batch(_PARSE_BATCH_SIZE).map(
      lambda name, s: _parse_batch(s, embedding_format, dequantize, params,
                                   name),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).prefetch(2)


def read_records(file_pattern: FilePattern,
                 dequantize: bool = True,
                 shuffle: bool = False,
                 seed: Optional[int] = None,
                 num_parallel_reads: int = 16,
                 shuffle_buffer_size: int = 4096,
                 embedding_format: Optional[str] = None,
                 params: Params = DEFAULT_PARAMS
                 ) -> Iterator[Dict[str, object]]:
  """Eagerly iterates parsed records as numpy values.

  Same records, in the same order, as `make_dataset` with the same arguments
  (see there); batches are split in numpy, which is much cheaper than
  converting each record's tensors separately.

  Yields:
    Dicts with the keys of `parse_sequence_example`: `video_id` as str,
    scalars as numpy scalars, `labels` int64 [k], `embeddings` [n, 128].
  """
  dataset = _make_batched_dataset(file_pattern, dequantize, shuffle, seed,
                                  num_parallel_reads, shuffle_buffer_size,
                                  embedding_format, params)
  for batch in dataset:
    columns, splits = {}, {}
    for key, value in batch.items():
      if isinstance(value, tf.RaggedTensor):  # [b, (k)] or [b, (n), 128]
        columns[key] = value.values.numpy()
        splits[key] = value.row_splits.numpy()
      else:
        columns[key] = value.numpy()
    for i in range(columns[VIDEO_ID].shape[0]):
      record = {}
      for key, column in columns.items():
        if key in splits:
          record[key] = column[splits[key][i]:splits[key][i + 1]]
        else:
          record[key] = column[i]
      record[VIDEO_ID] = record[VIDEO_ID].decode('utf-8', 'replace')
      yield record


def read_columns(file_pattern: FilePattern,
                 dequantize: bool = True,
                 embedding_format: Optional[str] = None,
                 params: Params = DEFAULT_PARAMS) -> Dict[str, np.ndarray]:
  """Every matching record at once, as columns (the cheap way to load a corpus).

  Records come in the order of `read_records` (files interleaved record by
  record); no per-record Python work is done.

  Returns:
    Dict of numpy arrays, one row per record: `video_id` (object, str),
    `start_time_seconds`, `end_time_seconds`, `example_hop_seconds` (float32),
    `num_examples` (int64); ragged columns as flat values plus row splits:
    `labels` int64 [total labels] with `labels_splits` [records + 1], and
    `embeddings` [total examples, 128] (float32, or uint8 when not
    dequantized) with `embeddings_splits` [records + 1].
  """
  dataset = _make_batched_dataset(file_pattern, dequantize, False, None, 16,
                                  1, embedding_format, params)
  parts: Dict[str, List[np.ndarray]] = {}
  for batch in dataset:
    for key, value in batch.items():
      if isinstance(value, tf.RaggedTensor):
        parts.setdefault(key, []).append(value.values.numpy())
        parts.setdefault(key + '_lengths', []).append(
            value.row_lengths().numpy())
      else:
        parts.setdefault(key, []).append(value.numpy())
  size = params.embedding_size
  if not parts:
    empty_values = np.zeros((0, size), np.float32 if dequantize else np.uint8)
    parts = {VIDEO_ID: [np.zeros(0, object)], START_TIME: [np.zeros(0, np.float32)],
             END_TIME: [np.zeros(0, np.float32)], EXAMPLE_HOP: [np.zeros(0, np.float32)],
             LABELS: [np.zeros(0, np.int64)], LABELS + '_lengths': [np.zeros(0, np.int64)],
             'embeddings': [empty_values], 'embeddings_lengths': [np.zeros(0, np.int64)],
             'num_examples': [np.zeros(0, np.int32)]}
  columns = {key: np.concatenate(value) for key, value in parts.items()}
  columns[VIDEO_ID] = np.array(
      [v.decode('utf-8', 'replace') for v in columns[VIDEO_ID]], dtype=object)
  for key in (LABELS, 'embeddings'):
    lengths = columns.pop(key + '_lengths')
    columns[key + '_splits'] = np.concatenate(
        [[0], np.cumsum(lengths, dtype=np.int64)])
  columns['num_examples'] = columns['num_examples'].astype(np.int64)
  columns['embeddings'] = columns['embeddings'].reshape(-1, size)
  return columns


def count_records(file_pattern: FilePattern,
                  num_parallel_reads: int = 16) -> int:
  """Number of records in the matching files (without parsing them)."""
  files = expand_file_pattern(file_pattern)
  dataset = tf.data.TFRecordDataset(
      files, num_parallel_reads=max(1, min(num_parallel_reads, len(files))))
  return int(dataset.reduce(np.int64(0), lambda n, _: n + 1))


def summarize_records(path: str) -> Iterator[Tuple[str, int, float]]:
  """(video_id, number of embeddings, end time) of each record in a TFRecord file.

  What the resume logic needs from a shard; protocol buffers rather than the
  tf.data parser, since only three context values are needed, from files of
  either embedding format.
  """
  for raw in raw_records(path):
    seq = tf.train.SequenceExample.FromString(raw)
    end_time = seq.context.feature[END_TIME].float_list.value[0]
    num_examples = len(seq.feature_lists.feature_list[AUDIO_EMBEDDING].feature)
    yield _video_id(seq), num_examples, end_time


def _video_id(seq: tf.train.SequenceExample) -> str:
  return seq.context.feature[VIDEO_ID].bytes_list.value[0].decode('utf-8')


def record_id(serialized: bytes) -> str:
  """The `video_id` of a serialized SequenceExample."""
  return _video_id(tf.train.SequenceExample.FromString(serialized))


def copy_records(source: str, destination: str, keep: Callable[[str], bool]) -> int:
  """Copies the records of a TFRecord file whose `video_id` `keep` accepts.

  Args:
    source: a local TFRecord file.
    destination: a local file to write (replaced).
    keep: video_id -> whether to copy that record.

  Returns:
    The number of records copied (bytes unchanged, order kept).
  """
  copied = 0
  with tf.io.TFRecordWriter(destination) as writer:
    for raw in raw_records(source):
      if keep(record_id(raw)):
        writer.write(raw)
        copied += 1
  return copied
