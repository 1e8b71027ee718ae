"""Embedding tables: one row per clip (or per example), written as CSV, Parquet or NPZ.

A table's columns, in order:

  id            str      the records' `video_id`
  labels        str      display names joined by ';' when a label map is
                         known, else the class indices ('' for no labels)
  duration      float32  end - start seconds of the clip
  num_examples  int64    the clip's number of 0.96 s examples
  example       int64    pooling 'none' only: the example's index in its clip
  start_seconds float32  pooling 'none' only: clip start + example * hop
  emb_0..emb_127 float32 the pooled embedding (the mean for 'mean_std')
  std_0..std_127 float32 pooling 'mean_std' only: the standard deviation

Poolings, over each clip's examples (uint8 records are dequantized first,
`q * 4/255 - 2`, as `vggish.postprocess.dequantize`): 'mean', 'max', 'std'
(population standard deviation, ddof=0), 'mean_std' (both, 256 feature
columns), and 'none' (one row per example). Sums are taken in float64 and the
results stored as float32.

A clip with no examples (shorter than one 0.96 s window) has a row of NaN
features under every pooling but 'none', where it has no row at all; either
way a warning names how many such clips there are.

`normalize='l2'` scales each row's whole feature vector (for 'mean_std' all
256 columns together, so that a row's dot product with another is their
cosine similarity) to unit length, after pooling; an all-zero row stays zero
and a NaN row stays NaN.
"""

import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Dict, List, Sequence, Union

import numpy as np
import pandas as pd

from vggish import extras
from vggish import files as files_lib
from vggish import labels as labels_lib

if TYPE_CHECKING:
  from vggish.analysis import clips as clips_lib  # Imports TensorFlow.

PathLike = Union[str, os.PathLike]

POOLINGS = ('mean', 'max', 'std', 'mean_std', 'none')
NORMALIZATIONS = ('none', 'l2')
# Extension -> format name; write_table and read_table accept these only.
FORMATS = {'.csv': 'csv', '.parquet': 'parquet', '.npz': 'npz'}

ID = 'id'
LABELS = 'labels'
DURATION = 'duration'
NUM_EXAMPLES = 'num_examples'
EXAMPLE = 'example'
START_SECONDS = 'start_seconds'
EMBEDDING_PREFIX = 'emb_'
STD_PREFIX = 'std_'
LABEL_SEPARATOR = ';'

_STRING_COLUMNS = (ID, LABELS)
_INT_COLUMNS = (NUM_EXAMPLES, EXAMPLE)
_FLOAT_COLUMNS = (DURATION, START_SECONDS)
# Nine significant digits name every float32 exactly (FLT_DECIMAL_DIG).
_CSV_FLOAT_FORMAT = '%.9g'


def embedding_columns(size: int = 128, prefix: str = EMBEDDING_PREFIX) -> List[str]:
  """['emb_0', ..., 'emb_{size-1}'] (or with another prefix, e.g. 'std_')."""
  return [f'{prefix}{i}' for i in range(size)]


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
  if value not in choices:
    raise ValueError(f'{name} must be one of {", ".join(choices)}; got {value!r}')


def _segment_reduce(ufunc, values: np.ndarray, splits: np.ndarray,
                    dtype=None) -> np.ndarray:
  """`ufunc` over each segment `values[splits[i]:splits[i + 1]]`.

  Args:
    ufunc: np.add or np.maximum.
    values: [total, d].
    splits: int64 [num_segments + 1], non-decreasing, from 0 to total.
    dtype: accumulation dtype (np.float64 for sums).

  Returns:
    [num_segments, d]; rows of empty segments are NaN.
  """
  lengths = np.diff(splits)
  full = lengths > 0
  out = np.full((len(lengths), values.shape[1]), np.nan,
                dtype=dtype or values.dtype)
  if full.any():
    # reduceat gives an empty segment the value at its start instead of the
    # identity, so only non-empty segments are reduced: between two of them
    # lie only empty ones, so each still ends where the next one starts.
    out[full] = ufunc.reduceat(values, splits[:-1][full], axis=0, dtype=dtype)
  return out


def pool(embeddings: np.ndarray, splits: np.ndarray, pooling: str) -> np.ndarray:
  """Pooled features float32 [num_clips, 128] ([num_clips, 256] for mean_std).

  Args:
    embeddings: [total_examples, 128], every clip's examples concatenated.
    splits: int64 [num_clips + 1], clip i's rows are splits[i]:splits[i + 1].
    pooling: 'mean', 'max', 'std' (population) or 'mean_std'.

  Returns:
    One row per clip, NaN for a clip without examples.
  """
  lengths = np.diff(splits)
  if pooling == 'max':
    return _segment_reduce(np.maximum, embeddings, splits).astype(np.float32)
  with np.errstate(invalid='ignore', divide='ignore'):  # 0 / 0: empty clips.
    mean = _segment_reduce(np.add, embeddings, splits, np.float64) / lengths[:, None]
  if pooling == 'mean':
    return mean.astype(np.float32)
  # Two passes (deviations from each clip's mean) rather than E[x^2] - E[x]^2,
  # which cancels badly for clips whose examples are nearly equal.
  squares = np.repeat(mean, lengths, axis=0)  # [total, 128] float64.
  np.subtract(embeddings, squares, out=squares)  # In place: one big array.
  np.square(squares, out=squares)
  with np.errstate(invalid='ignore', divide='ignore'):
    std = np.sqrt(_segment_reduce(np.add, squares, splits) / lengths[:, None])
  if pooling == 'std':
    return std.astype(np.float32)
  return np.concatenate([mean, std], axis=1).astype(np.float32)  # mean_std.


def _l2_normalize(features: np.ndarray) -> np.ndarray:
  """Rows scaled to unit L2 norm; zero rows stay zero, NaN rows NaN."""
  norms = np.sqrt(np.sum(features.astype(np.float64) ** 2, axis=1, keepdims=True))
  scale = np.divide(1.0, norms, out=np.ones_like(norms), where=norms > 0)
  return (features * scale).astype(np.float32)


def embedding_table(inputs_or_clips: Union['clips_lib.Clips', PathLike, Sequence[PathLike]],
                    pooling: str = 'mean',
                    normalize: str = 'none',
                    label_map: Union[None, PathLike, labels_lib.LabelMap] = None
                    ) -> pd.DataFrame:
  """A table of the clips' pooled embeddings (see the module docstring).

  Args:
    inputs_or_clips: a `Clips` (from `vggish.analysis.clips.load_clips`), or
      TFRecord files, globs or directories to load (ours, uint8 or float32, or
      AudioSet's released ones).
    pooling: one of `POOLINGS`: 'mean' (default), 'max', 'std' (population,
      ddof=0), 'mean_std' (emb_* means then std_* deviations) or 'none' (one
      row per example, with `example` and `start_seconds` columns).
    normalize: 'none', or 'l2': each row's feature vector (all emb_* and
      std_* columns together) scaled to unit length after pooling.
    label_map: a `LabelMap` or the path of a `class_labels_indices.csv`, for
      the label names; None: the clips' own (for record inputs, the map found
      beside the records, if any); without one, labels are indices.

  Returns:
    A DataFrame with one row per clip (per example for 'none'): `id`,
    `labels` (str), `duration` (float32), `num_examples` (int64), for 'none'
    `example` (int64) and `start_seconds` (float32), then the float32 feature
    columns. A clip without examples has NaN features (no row for 'none'),
    and a warning is logged.

  Raises:
    ValueError: an unknown pooling or normalization, inputs that match no
      records, or an unreadable label map.
  """
  _check_choice('pooling', pooling, POOLINGS)
  _check_choice('normalize', normalize, NORMALIZATIONS)
  # Here, not at the top: the records reader imports TensorFlow (seconds),
  # which reading, writing and checking table files do not need.
  from vggish.analysis import clips as clips_lib  # pylint: disable=import-outside-toplevel
  if isinstance(inputs_or_clips, clips_lib.Clips):
    clips = inputs_or_clips
    if label_map is not None:
      if not isinstance(label_map, labels_lib.LabelMap):
        label_map = labels_lib.read_label_map(label_map)
      clips = dataclasses.replace(clips, label_map=label_map)
  else:
    clips = clips_lib.load_clips(inputs_or_clips, label_map=label_map)

  lengths = clips.num_examples  # int64 [num_clips].
  size = clips.embeddings.shape[1]
  empty = np.flatnonzero(lengths == 0)
  if empty.size:
    what = 'no row' if pooling == 'none' else 'NaN features'
    logging.warning('%d of %d clip(s) have no examples and get %s (first: %r)',
                    empty.size, len(clips), what, str(clips.ids[empty[0]]))

  columns: Dict[str, np.ndarray] = {
      ID: np.asarray(clips.ids, dtype=object),
      LABELS: np.asarray(clips.label_strings(LABEL_SEPARATOR), dtype=object),
      DURATION: np.asarray(clips.durations, np.float32),
      NUM_EXAMPLES: np.asarray(lengths, np.int64),
  }
  if pooling == 'none':
    example_clip = clips.example_clip  # int64 [total_examples].
    example = clips.example_index
    columns = {name: values[example_clip] for name, values in columns.items()}
    columns[EXAMPLE] = example
    columns[START_SECONDS] = (
        clips.start_seconds[example_clip].astype(np.float64) +
        example * clips.hop_seconds[example_clip].astype(np.float64)
    ).astype(np.float32)
    features = np.asarray(clips.embeddings, np.float32)
    names = embedding_columns(size)
  else:
    features = pool(clips.embeddings, clips.splits, pooling)
    names = embedding_columns(size)
    if pooling == 'mean_std':
      names += embedding_columns(size, STD_PREFIX)
  if normalize == 'l2':
    features = _l2_normalize(features)
  # One float32 block for the features rather than 128 column insertions.
  return pd.concat([pd.DataFrame(columns),
                    pd.DataFrame(features, columns=names, copy=False)], axis=1)


# ------------------------------------------------------------------ files


def table_format(path: PathLike) -> str:
  """'csv', 'parquet' or 'npz', from `path`'s extension (any case).

  Raises:
    ValueError: another extension.
  """
  extension = os.path.splitext(os.fspath(path))[1].lower()
  if extension not in FORMATS:
    raise ValueError(
        f'cannot tell the table format of {os.fspath(path)!r}: its name must end '
        f'in one of {", ".join(FORMATS)}')
  return FORMATS[extension]


def _pyarrow_parquet(feature: str = 'writing .parquet tables'):
  """pyarrow.parquet, or MissingExtraError naming the `analysis` extra."""
  extras.require('pyarrow', 'analysis', feature)
  return extras.require('pyarrow.parquet', 'analysis', feature)


def check_output(path: PathLike) -> str:
  """What `write_table` would refuse, checked before any work is done.

  Returns:
    The format ('csv', 'parquet' or 'npz').

  Raises:
    ValueError: an unknown extension, or `path` is a directory.
    FileNotFoundError, NotADirectoryError: its directory does not exist.
    vggish.extras.MissingExtraError: .parquet without pyarrow.
  """
  path = os.fspath(path)
  fmt = table_format(path)
  if fmt == 'parquet':
    _pyarrow_parquet()
  files_lib.check_output_file(path, 'the table')
  return fmt


def write_table(df: pd.DataFrame, path: PathLike) -> str:
  """Writes `df` as CSV, Parquet or NPZ, by `path`'s extension, atomically.

  The table goes to a temporary file in the same directory, renamed over
  `path` when complete: `path` is either the whole new table or untouched.
  CSV: a header, floats with 9 significant digits (float32 round-trips
  exactly), NaN as an empty field. Parquet: through pyarrow (the `analysis`
  extra). NPZ: one array per column (strings as unicode arrays), loadable
  with `np.load(path, allow_pickle=False)`.

  Args:
    df: a table (`embedding_table`'s, or any with str/numeric columns).
    path: destination ending in .csv, .parquet or .npz.

  Returns:
    The format written.

  Raises:
    ValueError: an unknown extension, or `path` is a directory.
    OSError: the directory is missing or not writable, or the disk is full.
    vggish.extras.MissingExtraError: .parquet without pyarrow.
  """
  path = os.fspath(path)
  fmt = check_output(path)

  def write(f):
    if fmt == 'csv':
      with open(f.fileno(), 'w', encoding='utf-8', newline='',
                closefd=False) as text:
        df.to_csv(text, index=False, float_format=_CSV_FLOAT_FORMAT)
    elif fmt == 'parquet':
      pa = extras.require('pyarrow', 'analysis', 'writing .parquet tables')
      _pyarrow_parquet().write_table(
          pa.Table.from_pandas(df, preserve_index=False), f)
    else:
      np.savez(f, **_npz_arrays(df))

  files_lib.write_atomically(path, write, 'the table')
  return fmt


def _npz_arrays(df: pd.DataFrame) -> Dict[str, np.ndarray]:
  """One array per column; strings as fixed-width unicode (no pickles)."""
  arrays = {}
  for name in df.columns:
    column = df[name]
    if not isinstance(name, str):
      raise ValueError(f'an .npz table needs string column names; got {name!r}')
    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(
        column.dtype):
      arrays[name] = column.to_numpy()
    else:
      arrays[name] = np.asarray(column.astype(str).to_numpy(), dtype=str)
  return arrays


def _restore_dtypes(df: pd.DataFrame) -> pd.DataFrame:
  """The table's dtypes (str, int64, float32) for its known columns."""
  dtypes = {}
  for name in df.columns:
    if name in _STRING_COLUMNS:
      dtypes[name] = str
    elif name in _INT_COLUMNS:
      dtypes[name] = np.int64
    elif name in _FLOAT_COLUMNS or _is_feature(name):
      dtypes[name] = np.float32
  return df.astype(dtypes) if dtypes else df


def _is_feature(name) -> bool:
  return isinstance(name, str) and any(
      name.startswith(p) and name[len(p):].isdigit()
      for p in (EMBEDDING_PREFIX, STD_PREFIX))


def read_table(path: PathLike) -> pd.DataFrame:
  """Reads a table that `write_table` wrote (.csv, .parquet or .npz).

  Known columns get the table's dtypes back (`id`, `labels` str; `num_examples`,
  `example` int64; `duration`, `start_seconds`, `emb_*`, `std_*` float32);
  an empty CSV field in a float column is NaN, in a string column ''.

  Raises:
    ValueError: an unknown extension.
    FileNotFoundError: `path` does not exist.
    vggish.extras.MissingExtraError: .parquet without pyarrow.
  """
  path = os.fspath(path)
  fmt = table_format(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'table {path!r} does not exist')
  if fmt == 'csv':
    header = pd.read_csv(path, nrows=0).columns
    floats = [n for n in header if n in _FLOAT_COLUMNS or _is_feature(n)]
    dtypes = {n: str for n in header if n in _STRING_COLUMNS}
    dtypes.update({n: np.int64 for n in header if n in _INT_COLUMNS})
    dtypes.update({n: np.float32 for n in floats})
    # Only float columns read '' as NaN: an id 'NA' or empty labels stay text.
    df = pd.read_csv(path, dtype=dtypes, keep_default_na=False,
                     na_values={n: [''] for n in floats},
                     float_precision='round_trip')
  elif fmt == 'parquet':
    df = _pyarrow_parquet('reading .parquet tables').read_table(path).to_pandas()
  else:
    with np.load(path, allow_pickle=False) as data:
      df = pd.DataFrame({name: data[name] for name in data.files})
  return _restore_dtypes(df)
