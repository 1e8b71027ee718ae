"""Round trips of the one TFRecord schema (vggish.records), and the released AudioSet files."""

import numpy as np
import pytest
import tensorflow as tf

import conftest
from vggish import postprocess
from vggish import records

# The released AudioSet balanced-train features (tests/../shared/real/README.md).
AUDIOSET_SHARDS = 4070
AUDIOSET_RECORDS = 22160
AUDIOSET_CLASSES = 527


def _quantized(num_examples, seed):
  rng = np.random.RandomState(seed)
  return rng.randint(0, 256, size=(num_examples, 128)).astype(np.uint8)


def _raw(num_examples, seed):
  rng = np.random.RandomState(seed)
  return rng.standard_normal((num_examples, 128)).astype(np.float32)


def _round_trip(seq, **kwargs):
  parsed = records.parse_sequence_example(seq.SerializeToString(), **kwargs)
  return {key: value.numpy() for key, value in parsed.items()}


def test_uint8_round_trip_is_byte_identical():
  quantized = _quantized(5, seed=0)
  seq = records.make_sequence_example(
      'clip_a', quantized, labels=[3, 0, 526], start_time_seconds=30.0,
      end_time_seconds=40.0)
  parsed = _round_trip(seq, dequantize=False)
  assert parsed['embeddings'].dtype == np.uint8
  np.testing.assert_array_equal(parsed['embeddings'], quantized)
  assert parsed['video_id'] == b'clip_a'
  assert parsed['start_time_seconds'] == 30.0
  assert parsed['end_time_seconds'] == 40.0
  np.testing.assert_array_equal(parsed['labels'], [3, 0, 526])
  assert parsed['labels'].dtype == np.int64
  assert parsed['num_examples'] == 5
  # Dequantized in-graph exactly as the numpy postprocess.dequantize.
  dequantized = _round_trip(seq)['embeddings']
  assert dequantized.dtype == np.float32
  np.testing.assert_array_equal(dequantized, postprocess.dequantize(quantized))


def test_uint8_layout_is_audioset():
  quantized = _quantized(2, seed=1)
  seq = records.make_sequence_example('clip', quantized, labels=[7])
  features = seq.feature_lists.feature_list['audio_embedding'].feature
  assert len(features) == 2
  for row, feature in zip(quantized, features):
    assert list(feature.bytes_list.value) == [row.tobytes()]  # 128 bytes.
  context = seq.context.feature
  assert context['video_id'].bytes_list.value == [b'clip']
  assert list(context['labels'].int64_list.value) == [7]
  assert context['embedding_format'].bytes_list.value == [b'uint8']


def test_float32_round_trip_is_exact():
  raw = _raw(4, seed=2)
  seq = records.make_sequence_example('clip_b', raw, labels=[1],
                                      example_hop_seconds=0.48)
  parsed = _round_trip(seq, embedding_format='float32')
  assert parsed['embeddings'].dtype == np.float32
  np.testing.assert_array_equal(parsed['embeddings'], raw)
  assert parsed['example_hop_seconds'] == np.float32(0.48)
  # end = start + (n - 1) * hop + 0.96 s window when not given.
  assert parsed['end_time_seconds'] == pytest.approx(3 * 0.48 + 0.96)


def test_empty_labels_and_zero_examples():
  for embeddings, embedding_format in ((np.zeros((0, 128), np.uint8), 'uint8'),
                                       (np.zeros((0, 128), np.float32),
                                        'float32')):
    seq = records.make_sequence_example('short', embeddings,
                                        start_time_seconds=2.0)
    parsed = _round_trip(seq, embedding_format=embedding_format)
    assert parsed['num_examples'] == 0
    assert parsed['embeddings'].shape == (0, 128)
    assert parsed['labels'].shape == (0,)
    assert parsed['end_time_seconds'] == 2.0


def test_make_sequence_example_rejects_bad_input():
  with pytest.raises(ValueError, match='shape'):
    records.make_sequence_example('x', np.zeros((2, 64), np.uint8))
  with pytest.raises(ValueError, match='dtype'):
    records.make_sequence_example('x', np.zeros((2, 128), np.int32))
  with pytest.raises(ValueError, match='non-negative'):
    records.make_sequence_example('x', _quantized(1, seed=3), labels=[-1])


def _write(path, seqs):
  assert records.write_records(str(path), seqs) == len(seqs)
  return str(path)


@pytest.fixture()
def uint8_files(tmp_path):
  """Three files of quantized records, 9 records in all, one with no examples."""
  paths, expected = [], {}
  for f in range(3):
    seqs = []
    for r in range(3):
      video_id = f'f{f}r{r}'
      quantized = _quantized((f + r) % 4, seed=10 * f + r)
      labels = list(range(r))
      expected[video_id] = (quantized, labels)
      seqs.append(records.make_sequence_example(video_id, quantized, labels))
    paths.append(_write(tmp_path / f'part-{f}.tfrecord', seqs))
  return paths, expected


def test_dataset_over_several_files(uint8_files, tmp_path):
  paths, expected = uint8_files
  pattern = str(tmp_path / 'part-*.tfrecord')
  assert records.count_records(pattern) == 9
  seen = {}
  for record in records.read_records(pattern, dequantize=False):
    seen[record['video_id']] = record
  assert sorted(seen) == sorted(expected)
  for video_id, (quantized, labels) in expected.items():
    np.testing.assert_array_equal(seen[video_id]['embeddings'], quantized)
    np.testing.assert_array_equal(seen[video_id]['labels'], labels)
    assert seen[video_id]['num_examples'] == len(quantized)
  # A list of files and globs, with duplicates, reads each file once.
  assert records.count_records([paths[0], pattern]) == 9
  ids = [r['video_id'] for r in records.read_records(paths[:2])]
  assert sorted(ids) == sorted(v for v in expected if v[1] in '01')


def test_dataset_elements_are_plain_tensors(uint8_files):
  paths, _ = uint8_files
  dataset = records.make_dataset(paths)
  spec = dataset.element_spec
  assert spec['embeddings'] == tf.TensorSpec([None, 128], tf.float32)
  assert spec['labels'] == tf.TensorSpec([None], tf.int64)
  # So a consumer can pad-batch them directly.
  batch = next(iter(dataset.padded_batch(9)))
  assert batch['embeddings'].shape[0] == 9


def test_read_records_equals_make_dataset(uint8_files):
  paths, _ = uint8_files
  eager = list(records.read_records(paths))
  graph = list(records.make_dataset(paths).as_numpy_iterator())
  assert [r['video_id'] for r in eager] == [
      r['video_id'].decode() for r in graph]
  for a, b in zip(eager, graph):
    assert a.keys() == b.keys()
    for key in ('embeddings', 'labels', 'num_examples', 'end_time_seconds'):
      np.testing.assert_array_equal(a[key], b[key])
      assert np.asarray(a[key]).dtype == np.asarray(b[key]).dtype


def test_shuffle_is_seeded(uint8_files):
  paths, expected = uint8_files

  def order(seed):
    return [r['video_id'] for r in records.read_records(
        paths, shuffle=True, seed=seed, shuffle_buffer_size=16)]

  first = order(seed=1)
  assert sorted(first) == sorted(expected)
  assert order(seed=1) == first


def test_parse_inside_a_dataset_map(uint8_files):
  paths, expected = uint8_files
  dataset = tf.data.TFRecordDataset(paths).map(
      lambda s: records.parse_sequence_example(s, dequantize=False))
  for record in dataset:
    quantized, _ = expected[record['video_id'].numpy().decode()]
    np.testing.assert_array_equal(record['embeddings'].numpy(), quantized)


def test_format_mismatch_is_an_error(uint8_files, tmp_path):
  paths, _ = uint8_files
  float_path = _write(tmp_path / 'raw.tfrecord',
                      [records.make_sequence_example('raw', _raw(2, seed=4))])
  assert records.detect_embedding_format(paths[0]) == 'uint8'
  assert records.detect_embedding_format(float_path) == 'float32'
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'(?s)formats must agree.*float32.*raw\.tfrecord'):
    list(records.read_records(paths + [float_path]))
  with pytest.raises(tf.errors.InvalidArgumentError, match='formats must'):
    list(records.read_records(float_path, embedding_format='uint8'))
  with pytest.raises(ValueError, match='embedding_format must be'):
    records.make_dataset(paths, embedding_format='int8')


def test_detect_format_without_our_key_is_uint8(tmp_path):
  # A record built like the released AudioSet files: no embedding_format key.
  seq = tf.train.SequenceExample()
  seq.context.feature['video_id'].bytes_list.value.append(b'yt')
  seq.context.feature['labels'].int64_list.value.append(5)
  seq.feature_lists.feature_list['audio_embedding'].feature.add(
  ).bytes_list.value.append(bytes(range(128)))
  path = _write(tmp_path / 'audioset_like.tfrecord', [seq])
  assert records.detect_embedding_format(path) == 'uint8'
  (record,) = records.read_records(path, dequantize=False)
  np.testing.assert_array_equal(record['embeddings'][0], np.arange(128))
  assert record['example_hop_seconds'] == np.float32(0.96)
  empty = _write(tmp_path / 'empty.tfrecord', [])
  with pytest.raises(records.RecordFormatError, match='no records'):
    records.detect_embedding_format(empty)


def test_wrong_byte_count_is_an_error(tmp_path):
  seq = tf.train.SequenceExample()
  seq.feature_lists.feature_list['audio_embedding'].feature.add(
  ).bytes_list.value.append(bytes(64))
  seq.feature_lists.feature_list['audio_embedding'].feature.add(
  ).bytes_list.value.append(bytes(64))
  with pytest.raises(tf.errors.InvalidArgumentError, match='128 long'):
    records.parse_sequence_example(seq.SerializeToString())


def test_write_records_is_atomic(tmp_path):
  path = tmp_path / 'out.tfrecord'

  def failing():
    yield records.make_sequence_example('ok', _quantized(1, seed=5))
    raise RuntimeError('extraction crashed')

  with pytest.raises(RuntimeError):
    records.write_records(str(path), failing())
  assert not path.exists() and not (tmp_path / 'out.tfrecord.tmp').exists()
  records.write_records(str(path), [
      records.make_sequence_example('ok', _quantized(1, seed=5))
      .SerializeToString()
  ])
  assert path.exists() and not (tmp_path / 'out.tfrecord.tmp').exists()
  assert records.count_records(str(path)) == 1


def test_no_matching_files_is_an_error(tmp_path):
  with pytest.raises(ValueError, match='no TFRecord files match'):
    records.make_dataset(str(tmp_path / '*.tfrecord'))


def test_released_audioset_files():
  shard_dir = conftest.shared_real_path('audioset_bal_train')
  pattern = str(shard_dir / '*.tfrecord')
  assert len(records.expand_file_pattern(pattern)) == AUDIOSET_SHARDS
  assert records.detect_embedding_format(
      records.expand_file_pattern(pattern)[0]) == 'uint8'
  # Summaries computed in the pipeline, so the test does not loop in Python
  # over 22k records. The parser itself checks that every frame is 128 bytes.
  step = np.float32(4.0 / 255.0)

  def summarize(record):
    emb = record['embeddings']  # [n, 128] float32, dequantized.
    grid = (emb + 2.0) / step
    return {
        'num_examples': record['num_examples'],
        'num_labels': tf.size(record['labels']),
        'min_label': tf.reduce_min(record['labels']),
        'max_label': tf.reduce_max(record['labels']),
        'min_value': tf.reduce_min(emb),
        'max_value': tf.reduce_max(emb),
        'off_grid': tf.reduce_max(tf.abs(grid - tf.round(grid))),
    }

  dataset = records.make_dataset(pattern).map(summarize).batch(AUDIOSET_RECORDS)
  stats = {key: [] for key in dataset.element_spec}
  for batch in dataset:
    for key, value in batch.items():
      stats[key].append(value.numpy())
  stats = {key: np.concatenate(value) for key, value in stats.items()}
  assert stats['num_examples'].shape == (AUDIOSET_RECORDS,)
  assert stats['num_examples'].min() >= 1 and stats['num_examples'].max() <= 10
  assert stats['num_labels'].min() >= 1
  assert stats['min_label'].min() >= 0
  assert stats['max_label'].max() < AUDIOSET_CLASSES
  assert stats['min_value'].min() >= -2.0 and stats['max_value'].max() <= 2.0
  assert stats['off_grid'].max() < 1e-3  # Values are q * 4/255 - 2.


def test_records_have_the_same_bytes_in_every_process():
  """Protobuf writes map entries in a per-process hash order; `serialize` sorts them."""
  import hashlib
  import subprocess
  import sys
  code = ('import hashlib, numpy as np\n'
          'from vggish import records\n'
          'seq = records.make_sequence_example("clip", np.arange(256, dtype=np.float32)'
          '.reshape(2, 128), labels=(3, 1), start_time_seconds=0.0, '
          'end_time_seconds=1.5, example_hop_seconds=0.96)\n'
          'print(hashlib.sha256(records.serialize(seq)).hexdigest())\n')
  digests = {subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True, timeout=120,
                            cwd=str(conftest.GOLDEN_DIR.parents[1])).stdout.strip()
             for _ in range(3)}
  seq = records.make_sequence_example(
      'clip', np.arange(256, dtype=np.float32).reshape(2, 128), labels=(3, 1),
      start_time_seconds=0.0, end_time_seconds=1.5, example_hop_seconds=0.96)
  assert digests == {hashlib.sha256(records.serialize(seq)).hexdigest()}
