"""Embedding tables (vggish.analysis.tables, tools.table): pooled values, files, CLI, AudioSet."""

import logging
import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import conftest
from vggish import extras
from vggish import labels as labels_lib
from vggish import postprocess
from vggish import records
from vggish.analysis import clips as clips_lib
from vggish.analysis import tables

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
EMB = tables.embedding_columns()
STD = tables.embedding_columns(prefix='std_')
LABEL_MAP_CSV = ('index,mid,display_name\n'
                 '0,/m/09x0r,"Speech"\n'
                 '1,/m/05zppz,"Male speech, man speaking"\n'
                 '2,/m/04rlf,"Music"\n')
# (id, number of examples, labels, start seconds): "empty" is shorter than one example.
CLIPS = (('a', 3, [0, 2], 0.0), ('b', 1, [], 30.0), ('empty', 0, [1], 5.0),
         ('c', 7, [1], 10.0))
HOP = 0.5


def _quantized(num_examples, seed):
  return np.random.RandomState(seed).randint(
      0, 256, size=(num_examples, 128)).astype(np.uint8)


def _write_corpus(directory, embedding_format='uint8', label_map=True):
  """Two shards of CLIPS; returns {id: the embeddings written (uint8 or float32)}."""
  directory.mkdir(parents=True, exist_ok=True)
  written, sequences = {}, []
  for seed, (clip_id, n, labels, start) in enumerate(CLIPS):
    values = _quantized(n, seed)
    if embedding_format == 'float32':
      values = np.random.RandomState(seed).standard_normal((n, 128)).astype(np.float32)
    written[clip_id] = values
    sequences.append(records.make_sequence_example(
        clip_id, values, labels=labels, start_time_seconds=start,
        example_hop_seconds=HOP))
  records.write_records(directory / 'part-0.tfrecord', sequences[:2])
  records.write_records(directory / 'part-1.tfrecord', sequences[2:])
  if label_map:
    (directory / clips_lib.LABEL_MAP_NAME).write_text(LABEL_MAP_CSV)
  return written


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
  directory = tmp_path_factory.mktemp('records')
  return directory, _write_corpus(directory)


@pytest.fixture(scope='module')
def clips(corpus):
  return clips_lib.load_clips(corpus[0])


def _row(df, clip_id):
  rows = df[df['id'] == clip_id]
  assert len(rows) == 1, clip_id
  return rows.iloc[0]


def _needs_pyarrow(extension):
  """Skip a .parquet case where the `analysis` extra is not installed."""
  if extension == '.parquet':
    pytest.importorskip('pyarrow', reason='.parquet needs pyarrow: pip install -e ".[analysis]"')


def _dequantized(values):
  return postprocess.dequantize(values).astype(np.float64) if values.dtype == np.uint8 \
      else values.astype(np.float64)


def test_columns_and_dtypes(clips):
  df = tables.embedding_table(clips)
  assert list(df.columns) == ['id', 'labels', 'duration', 'num_examples'] + EMB
  assert len(df) == len(CLIPS)
  assert df['num_examples'].dtype == np.int64
  for name in ['duration'] + EMB:
    assert df[name].dtype == np.float32, name
  row = _row(df, 'c')
  assert row['num_examples'] == 7
  assert row['duration'] == pytest.approx(6 * HOP + 0.96, abs=1e-6)
  assert list(tables.embedding_table(clips, pooling='mean_std').columns[4:]) == EMB + STD


@pytest.mark.parametrize('embedding_format', ['uint8', 'float32'])
def test_pooled_values_equal_numpy_on_the_written_values(tmp_path, embedding_format):
  written = _write_corpus(tmp_path, embedding_format)
  loaded = clips_lib.load_clips(tmp_path)
  pooled = {p: tables.embedding_table(loaded, pooling=p)
            for p in ('mean', 'max', 'std', 'mean_std')}
  for clip_id, values in written.items():
    if not len(values):
      continue
    x = _dequantized(values)  # float64 [n, 128]
    mean = x.mean(axis=0).astype(np.float32)
    std = x.std(axis=0, ddof=0).astype(np.float32)
    # Sums in float64, stored as float32: equal to numpy's up to that rounding.
    np.testing.assert_allclose(_row(pooled['mean'], clip_id)[EMB].to_numpy(np.float32),
                               mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(_row(pooled['max'], clip_id)[EMB].to_numpy(np.float32),
                                  x.max(axis=0).astype(np.float32))
    np.testing.assert_allclose(_row(pooled['std'], clip_id)[EMB].to_numpy(np.float32),
                               std, rtol=1e-5, atol=1e-6)
    both = _row(pooled['mean_std'], clip_id)
    np.testing.assert_allclose(both[EMB].to_numpy(np.float32), mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(both[STD].to_numpy(np.float32), std, rtol=1e-5, atol=1e-6)
  # One example: its std is 0 (population), its mean and max the example itself.
  np.testing.assert_array_equal(_row(pooled['std'], 'b')[EMB].to_numpy(np.float32), 0)


def test_inputs_may_be_record_paths(corpus, clips):
  directory, _ = corpus
  from_paths = tables.embedding_table([str(directory / '*.tfrecord')])
  pd.testing.assert_frame_equal(from_paths, tables.embedding_table(clips))


def test_none_pooling_gives_one_row_per_example(corpus, clips):
  _, written = corpus
  df = tables.embedding_table(clips, pooling='none')
  assert list(df.columns) == ['id', 'labels', 'duration', 'num_examples', 'example',
                              'start_seconds'] + EMB
  assert len(df) == sum(n for _, n, _, _ in CLIPS)
  assert df['example'].dtype == np.int64 and df['start_seconds'].dtype == np.float32
  assert 'empty' not in set(df['id'])
  for clip_id, n, _, start in CLIPS:
    rows = df[df['id'] == clip_id]
    assert len(rows) == n
    np.testing.assert_array_equal(rows['example'], np.arange(n))
    np.testing.assert_allclose(rows['start_seconds'], start + HOP * np.arange(n), atol=1e-5)
    assert (rows['num_examples'] == n).all()
    np.testing.assert_array_equal(rows[EMB].to_numpy(),
                                  postprocess.dequantize(written[clip_id]))


@pytest.mark.parametrize('pooling', tables.POOLINGS)
def test_l2_normalize_gives_unit_rows(clips, pooling):
  df = tables.embedding_table(clips, pooling=pooling, normalize='l2')
  features = df[[c for c in df.columns if c.startswith(('emb_', 'std_'))]]
  # A one-example clip's std is all zeros, which stays zero.
  zero = (df['num_examples'] == 1) if pooling == 'std' else (df['num_examples'] < 0)
  np.testing.assert_array_equal(features[zero].to_numpy(), 0)
  features = features[(df['num_examples'] > 0) & ~zero].to_numpy(np.float64)
  np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-6)
  if pooling == 'mean':  # The direction is the mean's.
    mean = tables.embedding_table(clips)[EMB].to_numpy(np.float64)[df['num_examples'] > 0]
    np.testing.assert_allclose(
        features, mean / np.linalg.norm(mean, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_l2_normalize_keeps_a_zero_row_zero(tmp_path):
  zeros = np.zeros((2, 128), np.float32)
  records.write_records(tmp_path / 'z.tfrecord', [records.make_sequence_example('z', zeros)])
  df = tables.embedding_table(tmp_path, normalize='l2')
  np.testing.assert_array_equal(df[EMB].to_numpy(), 0)


def test_labels_with_and_without_a_label_map(corpus, tmp_path):
  directory, _ = corpus
  named = tables.embedding_table(directory)  # The map beside the records.
  assert _row(named, 'a')['labels'] == 'Speech;Music'
  assert _row(named, 'c')['labels'] == 'Male speech, man speaking'
  assert _row(named, 'b')['labels'] == ''
  bare = tmp_path / 'bare'
  _write_corpus(bare, label_map=False)
  indices = tables.embedding_table(bare)
  assert _row(indices, 'a')['labels'] == '0;2'
  assert _row(indices, 'empty')['labels'] == '1'
  assert _row(indices, 'b')['labels'] == ''
  # An explicit map, given with Clips loaded without one.
  explicit = tables.embedding_table(clips_lib.load_clips(bare),
                                    label_map=directory / clips_lib.LABEL_MAP_NAME)
  assert _row(explicit, 'a')['labels'] == 'Speech;Music'


def test_a_clip_without_examples_has_nan_features_and_a_warning(clips, caplog):
  with caplog.at_level(logging.WARNING):
    df = tables.embedding_table(clips, pooling='mean_std')
  assert 'no examples' in caplog.text and "'empty'" in caplog.text
  row = _row(df, 'empty')
  assert row['num_examples'] == 0
  assert np.isnan(row[EMB + STD].to_numpy(np.float32)).all()
  # Its neighbours in the records are unaffected (reduceat's empty-segment quirk).
  assert not np.isnan(df[df['id'] != 'empty'][EMB + STD].to_numpy()).any()
  for pooling in ('max', 'std'):
    assert np.isnan(_row(tables.embedding_table(clips, pooling=pooling), 'empty')[EMB]
                    .to_numpy(np.float32)).all()


def test_no_clip_has_examples(tmp_path):
  records.write_records(tmp_path / 'e.tfrecord', [
      records.make_sequence_example(f'e{i}', np.zeros((0, 128), np.uint8)) for i in range(2)])
  df = tables.embedding_table(tmp_path, pooling='std', normalize='l2')
  assert len(df) == 2 and np.isnan(df[EMB].to_numpy()).all()
  assert len(tables.embedding_table(tmp_path, pooling='none')) == 0


def test_bad_arguments_are_value_errors(clips):
  with pytest.raises(ValueError, match='pooling must be one of mean, max'):
    tables.embedding_table(clips, pooling='median')
  with pytest.raises(ValueError, match='normalize must be one of none, l2'):
    tables.embedding_table(clips, normalize='l1')


@pytest.mark.parametrize('extension', ['.csv', '.parquet', '.npz'])
@pytest.mark.parametrize('pooling', ['mean_std', 'none'])
def test_round_trip(clips, tmp_path, extension, pooling):
  _needs_pyarrow(extension)
  df = tables.embedding_table(clips, pooling=pooling)
  df.loc[df['id'] == 'a', 'id'] = 'NA'  # Not read back as missing.
  path = tmp_path / f'table{extension}'
  assert tables.write_table(df, path) == extension[1:]
  back = tables.read_table(path)
  pd.testing.assert_frame_equal(back, df)  # Exact: float32 values, dtypes, '' labels, NaN.
  assert os.listdir(tmp_path) == [path.name]  # No temporary file left.


def test_npz_loads_without_pickles(clips, tmp_path):
  df = tables.embedding_table(clips)
  tables.write_table(df, tmp_path / 't.npz')
  with np.load(tmp_path / 't.npz', allow_pickle=False) as data:
    assert data.files == list(df.columns)
    assert data['id'].dtype.kind == 'U' and data['labels'].dtype.kind == 'U'
    assert data['emb_0'].dtype == np.float32
    np.testing.assert_array_equal(data['id'], df['id'].to_numpy(str))


def test_write_errors(clips, tmp_path):
  df = tables.embedding_table(clips)
  with pytest.raises(ValueError, match=r'\.csv, \.parquet, \.npz'):
    tables.write_table(df, tmp_path / 'table.xlsx')
  with pytest.raises(FileNotFoundError, match='does not exist'):
    tables.write_table(df, tmp_path / 'missing' / 'table.csv')
  (tmp_path / 'file').write_text('')
  with pytest.raises(NotADirectoryError, match='is not a directory'):
    tables.write_table(df, tmp_path / 'file' / 'table.csv')
  (tmp_path / 'dir.csv').mkdir()
  with pytest.raises(ValueError, match='is a directory'):
    tables.write_table(df, tmp_path / 'dir.csv')
  # A failure while writing leaves the previous table whole and no temporary file.
  path = tmp_path / 'table.npz'
  tables.write_table(df, path)
  before = path.read_bytes()
  with pytest.raises(ValueError, match='string column names'):
    tables.write_table(df.rename(columns={'emb_0': 0}), path)
  assert path.read_bytes() == before
  assert sorted(os.listdir(tmp_path)) == ['dir.csv', 'file', 'table.npz']
  with pytest.raises(FileNotFoundError):
    tables.read_table(tmp_path / 'nothing.csv')


def test_a_failed_rename_leaves_nothing_and_says_why(clips, tmp_path, monkeypatch):
  df = tables.embedding_table(clips)

  def refuse(source, destination):
    raise PermissionError(13, 'Permission denied', destination)

  monkeypatch.setattr(os, 'replace', refuse)
  with pytest.raises(PermissionError, match=r"cannot write the table '.*t\.csv': "
                     'Permission denied'):
    tables.write_table(df, tmp_path / 't.csv')
  assert not os.listdir(tmp_path)


def test_parquet_without_pyarrow_names_the_extra(clips, tmp_path, monkeypatch):
  df = tables.embedding_table(clips)
  monkeypatch.setitem(sys.modules, 'pyarrow', None)
  monkeypatch.setitem(sys.modules, 'pyarrow.parquet', None)
  with pytest.raises(extras.MissingExtraError, match=r'pip install -e "\.\[analysis\]"'):
    tables.write_table(df, tmp_path / 'table.parquet')
  assert not os.listdir(tmp_path)
  tables.write_table(df, tmp_path / 'table.csv')  # Other formats need no pyarrow.


# ------------------------------------------------------------------ CLI


def _run_cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO_ROOT))
  return subprocess.run([sys.executable, '-m', 'tools.table', *map(str, args)],
                        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def _error_lines(proc):
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr
  return [line for line in proc.stderr.splitlines() if line.startswith('error: ')]


@pytest.mark.slow  # Two runs of the CLI, each importing TensorFlow: ~15-30 s.
def test_cli_writes_csv_and_parquet(corpus, tmp_path):
  directory, _ = corpus
  expected = tables.embedding_table(directory, pooling='max', normalize='l2')
  for name in ('t.csv', 't.parquet'):
    _needs_pyarrow(os.path.splitext(name)[1])
    proc = _run_cli('--output', tmp_path / name, '--pooling', 'max', '--normalize', 'l2',
                    directory / 'part-0.tfrecord', directory / 'part-1.tfrecord')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '4 rows (4 clips, 11 examples' in proc.stderr
    pd.testing.assert_frame_equal(
        tables.read_table(tmp_path / name).sort_values('id', ignore_index=True),
        expected.sort_values('id', ignore_index=True))
  assert _row(tables.read_table(tmp_path / 't.csv'), 'a')['labels'] == 'Speech;Music'


def test_cli_usage_errors(corpus, tmp_path):
  directory, _ = corpus
  # Refused before TensorFlow is imported: stderr is exactly one line.
  proc = _run_cli('--output', tmp_path / 't.xlsx', directory)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      f"error: cannot tell the table format of '{tmp_path / 't.xlsx'}': its name must end "
      'in one of .csv, .parquet, .npz']
  proc = _run_cli('--output', tmp_path / 'nowhere' / 't.csv', directory)
  assert _error_lines(proc) == proc.stderr.strip().splitlines()
  assert 'does not exist' in proc.stderr
  proc = _run_cli('--output', tmp_path / 't.csv', '--pooling', 'median', directory)
  assert _error_lines(proc) == proc.stderr.strip().splitlines()
  assert '--pooling' in proc.stderr
  proc = _run_cli('--output', tmp_path / 't.csv', tmp_path / 'nothing' / '*.tfrecord')
  errors = _error_lines(proc)
  assert len(errors) == 1 and 'no TFRecord files match' in errors[0], proc.stderr[-3000:]
  assert not os.listdir(tmp_path)


# ------------------------------------------------------------------ AudioSet


def test_audioset_balanced_train_table():
  shard_dir = conftest.shared_real_path('audioset_bal_train')
  label_map = conftest.shared_real_path('class_labels_indices.csv')
  df = tables.embedding_table(shard_dir, label_map=label_map)
  assert len(df) == 22160 and df['id'].is_unique
  assert sum(c.startswith('emb_') for c in df.columns) == 128
  assert not np.isnan(df[EMB].to_numpy()).any()
  # One clip of several examples, read independently of the records module.
  for shard in sorted(shard_dir.glob('*.tfrecord'))[100:]:
    serialized = next(iter(tf.data.TFRecordDataset(str(shard)))).numpy()
    seq = tf.train.SequenceExample.FromString(serialized)
    features = seq.feature_lists.feature_list['audio_embedding'].feature
    if len(features) > 1:
      break
  clip_id = seq.context.feature['video_id'].bytes_list.value[0].decode()
  frames = [np.frombuffer(f.bytes_list.value[0], np.uint8) for f in features]
  assert len(frames) > 1
  mean = postprocess.dequantize(np.stack(frames)).astype(np.float64).mean(axis=0)
  row = _row(df, clip_id)
  assert row['num_examples'] == len(frames)
  np.testing.assert_allclose(row[EMB].to_numpy(np.float32), mean.astype(np.float32),
                             rtol=1e-6, atol=1e-7)
  classes = labels_lib.read_label_map(label_map)
  names = dict(zip(classes.indices, classes.display_names))
  labels = seq.context.feature['labels'].int64_list.value
  assert row['labels'] == ';'.join(names[k] for k in labels)
