"""classifier.data: splits, clips from records and audio (label maps: test_labels.py)."""

import numpy as np
import pytest

from classifier import data
from classifier import synthetic
from conftest import shared_real_path
from vggish import labels as labels_lib

NAMES = ('Speech', 'Male speech, man speaking', 'Dog', 'Bark')


@pytest.fixture
def label_map_path(tmp_path):
  path = tmp_path / 'labels.csv'
  synthetic.write_label_map(path, NAMES)
  return path


def test_split_assignment_is_a_stable_hash():
  ids = [f'video{i}' for i in range(4000)]
  split = data.split_assignment(ids, 0.1, 0.2, seed=3)
  assert abs(np.mean(split == data.TEST) - 0.2) < 0.03
  assert abs(np.mean(split == data.VALIDATION) - 0.1) < 0.03
  # Independent of order and of the other ids present.
  reversed_split = data.split_assignment(ids[::-1], 0.1, 0.2, seed=3)
  np.testing.assert_array_equal(reversed_split[::-1], split)
  np.testing.assert_array_equal(
      data.split_assignment(ids[:10], 0.1, 0.2, seed=3), split[:10])
  assert not np.array_equal(data.split_assignment(ids, 0.1, 0.2, seed=4),
                            split)
  with pytest.raises(ValueError, match='fractions'):
    data.split_assignment(ids, 0.6, 0.5)


def _clip_set():
  clips = [np.full((n, 2), i, np.float32) for i, n in enumerate([3, 1, 0, 2])]
  label_map = labels_lib.LabelMap(((0, 'a', 'A'), (1, 'b', 'B')))
  return data.from_clips(['c0', 'c1', 'c2', 'c3'], clips,
                         [[0], [1], [], [0, 1]], label_map, (2,))


def test_clip_set_subset_and_padded_batch():
  clip_set = _clip_set()
  np.testing.assert_array_equal(clip_set.num_examples, [3, 1, 0, 2])
  sub = clip_set.subset([3, 1])
  assert list(sub.ids) == ['c3', 'c1']
  np.testing.assert_array_equal(sub.clip(0), np.full((2, 2), 3.0))
  np.testing.assert_array_equal(sub.labels, [[1, 1], [0, 1]])
  features, mask = clip_set.padded_batch(np.array([0, 1, 2]))
  assert features.shape == (3, 3, 2)
  np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(features[1], [[1, 1], [0, 0], [0, 0]])
  # Cut to 2 examples: the first two without an rng.
  features, mask = clip_set.padded_batch(np.array([0]), max_examples=2)
  assert features.shape == (1, 2, 2) and mask.sum() == 2


@pytest.mark.parametrize('embedding_format', ['float32', 'uint8'])
def test_load_records_round_trip(tmp_path, label_map_path, embedding_format):
  ids, clips, label_lists = synthetic.embedding_task(12, num_classes=4,
                                                     seed=1)
  synthetic.write_embedding_records(tmp_path / 'a.tfrecord', ids, clips,
                                    label_lists, embedding_format)
  label_map = labels_lib.read_classes(label_map_path)
  clip_set, info = data.load_records(str(tmp_path / '*.tfrecord'), label_map)
  assert info.embedding_format == embedding_format
  assert info.example_hop_seconds == pytest.approx(0.96)
  assert list(clip_set.ids) == ids
  for i, clip in enumerate(clips):
    if embedding_format == 'uint8':
      # Dequantized as q * 4/255 - 2: truncation is at most one step low.
      expected = synthetic.quantize(clip).astype(np.float32) * (4 / 255) - 2
      np.testing.assert_allclose(clip_set.clip(i), expected, atol=1e-6)
    else:
      np.testing.assert_array_equal(clip_set.clip(i), clip)
    assert sorted(np.flatnonzero(clip_set.labels[i])) == label_lists[i]


def test_load_records_rejects_labels_outside_the_map(tmp_path):
  synthetic.write_embedding_records(
      tmp_path / 'a.tfrecord', ['x'], [np.zeros((1, 128), np.float32)], [[7]])
  label_map = labels_lib.LabelMap(((0, 'a', 'A'),))
  with pytest.raises(ValueError, match='outside the label map'):
    data.load_records(str(tmp_path / 'a.tfrecord'), label_map)


def test_read_audio_csv(tmp_path, label_map_path):
  label_map = labels_lib.read_classes(label_map_path)
  for name in ('a.wav', 'b.wav'):
    (tmp_path / name).write_bytes(b'')
  path = tmp_path / 'train.csv'
  path.write_text('fname,labels\na.wav,"Bark,Dog"\nb.wav,Speech\n')
  ids, paths, label_lists = data.read_audio_csv(path, None, label_map)
  assert ids == ['a', 'b'] and label_lists == [[2, 3], [0]]
  assert paths == [str(tmp_path / 'a.wav'), str(tmp_path / 'b.wav')]
  path.write_text('fname,labels\na.wav,Cat\n')
  with pytest.raises(ValueError, match='unknown label'):
    data.read_audio_csv(path, None, label_map)
  path.write_text('fname,labels\nmissing.wav,Dog\n')
  with pytest.raises(ValueError, match='do not exist'):
    data.read_audio_csv(path, None, label_map)


def test_real_audioset_records_load():
  """A few released AudioSet shards: uint8, 0.96 s hop, labels in 527 classes."""
  shards = sorted(shared_real_path('audioset_bal_train').glob('*.tfrecord'))[:20]
  label_map = labels_lib.read_classes(
      shared_real_path('class_labels_indices.csv'))
  assert len(label_map) == 527
  clip_set, info = data.load_records([str(p) for p in shards], label_map)
  assert info.embedding_format == 'uint8'
  assert info.example_hop_seconds == pytest.approx(0.96)
  assert len(clip_set) > 0 and clip_set.labels.sum(axis=1).min() >= 1
  assert clip_set.num_examples.max() <= 10
  # Dequantized bytes lie on the grid q * 4/255 - 2.
  q = (clip_set.values + 2.0) * (255.0 / 4.0)
  np.testing.assert_allclose(q, np.round(q), atol=1e-3)


def test_load_audio_leaves_out_unreadable_files(tmp_path):
  import soundfile as sf  # pylint: disable=import-outside-toplevel
  label_map = labels_lib.build_label_map(['a', 'b'])
  t = np.arange(24000) / 16000.0
  sf.write(tmp_path / 'good.wav', 0.5 * np.sin(2 * np.pi * 440 * t), 16000)
  (tmp_path / 'bad.wav').write_bytes(b'RIFF0000WAVEnot audio')
  failures = []
  clip_set = data.load_audio(
      ['good', 'bad'], [tmp_path / 'good.wav', tmp_path / 'bad.wav'],
      [[0], [1]], label_map, failures=failures)
  assert list(clip_set.ids) == ['good']
  assert clip_set.labels.tolist() == [[1.0, 0.0]]
  assert clip_set.num_examples.tolist() == [1]
  assert [path for path, _ in failures] == [str(tmp_path / 'bad.wav')]
  assert 'cannot be read as audio' in failures[0][1]
  with pytest.raises(ValueError, match='none of the 1 audio files'):
    data.load_audio(['bad'], [tmp_path / 'bad.wav'], [[1]], label_map)
