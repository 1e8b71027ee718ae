"""classifier.example_store: log-mel examples written once, reused, streamed.

Tiny generated audio (a few seconds in all); the streamed examples are
compared exactly with `classifier.data.load_audio`'s in-memory ones.
"""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from classifier import data
from classifier import example_store
from classifier import synthetic
from classifier import training
from vggish.params import DEFAULT_PARAMS

PARAMS = dataclasses.replace(DEFAULT_PARAMS, short_clip_policy='pad')
# Lengths in seconds: 1, 2, 3 or 4 examples, and one padded short clip.
SECONDS = (1.0, 2.0, 3.0, 4.0, 2.5, 0.5, 1.5, 3.5)
LABELS = ([0], [1], [2], [0, 1], [1, 2], [0], [2], [0, 2])


def _write(path, seconds, seed):
  rng = np.random.default_rng(seed)
  n = int(seconds * 16000)
  t = np.arange(n) / 16000
  wave = 0.3 * np.sin(2 * np.pi * (200 + 300 * seed) * t)
  wave += 0.1 * rng.standard_normal(n)
  soundfile.write(str(path), np.clip(wave, -1, 1), 16000, subtype='PCM_16')
  return str(path)


@pytest.fixture
def corpus(tmp_path):
  audio = tmp_path / 'audio'
  audio.mkdir()
  paths = [_write(audio / f'clip{i}.wav', s, i) for i, s in enumerate(SECONDS)]
  label_map = synthetic.write_label_map(tmp_path / 'labels.csv',
                                        ['a', 'b', 'c'])
  ids = [f'clip{i}' for i in range(len(paths))]
  return {'ids': ids, 'paths': paths, 'labels': [list(l) for l in LABELS],
          'label_map': label_map, 'store': str(tmp_path / 'store')}


def _build(corpus, **kwargs):
  kwargs.setdefault('num_workers', 1)
  kwargs.setdefault('records_per_shard', 3)
  return example_store.build(
      corpus['store'], corpus['ids'], corpus['paths'], corpus['labels'],
      corpus['label_map'], kwargs.pop('params', PARAMS), show_progress=False,
      **kwargs)


def _in_memory(corpus, params=PARAMS):
  return data.load_audio(corpus['ids'], corpus['paths'], corpus['labels'],
                         corpus['label_map'], params)


def _count_computations(monkeypatch):
  calls = []
  compute = example_store._compute_examples  # pylint: disable=protected-access

  def counting(path, params):
    calls.append(path)
    return compute(path, params)

  monkeypatch.setattr(example_store, '_compute_examples', counting)
  return calls


def _inference_clips(store, examples_per_batch=5):
  """position -> (examples of its row, the row's mask), checking padding."""
  clips = {}
  for positions, features, mask in store.inference_batches(examples_per_batch):
    features, mask = features.numpy(), mask.numpy()
    assert features.shape[:2] == mask.shape and mask.shape[1] >= 1
    for row, position in enumerate(positions):
      n = int(mask[row].sum())
      assert (mask[row, :n] == 1).all() and not features[row, n:].any()
      assert int(position) not in clips
      clips[int(position)] = features[row, :n]
  return clips


def _assert_same_clips(store, clip_set):
  assert list(store.ids) == list(clip_set.ids)
  np.testing.assert_array_equal(store.labels, clip_set.labels)
  np.testing.assert_array_equal(store.num_examples, clip_set.num_examples)
  clips = _inference_clips(store)
  assert sorted(clips) == list(range(len(clip_set)))
  for i in range(len(clip_set)):
    np.testing.assert_array_equal(clips[i], clip_set.clip(i))  # Exact.


def test_built_once_then_reused(corpus, monkeypatch):
  calls = _count_computations(monkeypatch)
  first = _build(corpus)
  assert (first.num_computed, first.num_reused, first.failures) == (8, 0, [])
  assert len(calls) == 8
  # 8 clips, 3 per shard; the index has one row per file.
  names = sorted(os.listdir(corpus['store']))
  assert [n for n in names if n.endswith('.tfrecord')] == [
      example_store.shard_name(i) for i in range(3)]
  with open(os.path.join(corpus['store'], example_store.INDEX_NAME)) as f:
    assert len(f.read().splitlines()) == 1 + 8
  config = json.loads(open(os.path.join(
      corpus['store'], example_store.CONFIG_NAME)).read())
  assert config['params']['short_clip_policy'] == 'pad'

  second = _build(corpus)
  assert (second.num_computed, second.num_reused) == (0, 8)
  assert len(calls) == 8  # Nothing computed again.
  _assert_same_clips(second.store, _in_memory(corpus))
  # Another CSV over some of the same files: also nothing to compute.
  part = example_store.build(corpus['store'], ['x', 'y'], corpus['paths'][:2],
                             [[2], [0]], corpus['label_map'], PARAMS,
                             show_progress=False)
  assert part.num_computed == 0 and list(part.store.ids) == ['x', 'y']
  np.testing.assert_array_equal(part.store.labels, [[0, 0, 1], [1, 0, 0]])


def test_interrupted_build_resumes(corpus, monkeypatch):
  calls = []
  compute = example_store._compute_examples  # pylint: disable=protected-access

  def interrupted(path, params):
    calls.append(path)
    if len(calls) == 5:
      raise KeyboardInterrupt
    return compute(path, params)

  monkeypatch.setattr(example_store, '_compute_examples', interrupted)
  with pytest.raises(KeyboardInterrupt):
    _build(corpus)
  names = os.listdir(corpus['store'])
  # One whole shard of 3 kept; the open one (the 4th clip) dropped.
  assert [n for n in names if 'tfrecord' in n] == [example_store.shard_name(0)]
  # A hard kill would also leave a .tmp shard and a torn index line.
  with open(os.path.join(corpus['store'], 'examples-00001.tfrecord.tmp'),
            'wb') as f:
    f.write(b'partial')
  with open(os.path.join(corpus['store'], example_store.INDEX_NAME), 'a') as f:
    f.write('12345,clip9,/no/such')

  monkeypatch.setattr(example_store, '_compute_examples', compute)
  calls = _count_computations(monkeypatch)
  resumed = _build(corpus)
  assert (resumed.num_computed, resumed.num_reused) == (5, 3)
  assert len(calls) == 5
  assert not [n for n in os.listdir(corpus['store']) if n.endswith('.tmp')]
  _assert_same_clips(resumed.store, _in_memory(corpus))


def test_changed_file_is_recomputed(corpus, monkeypatch):
  _build(corpus)
  _write(corpus['paths'][1], 5.0, seed=42)  # Was 2 s: now 5 examples.
  calls = _count_computations(monkeypatch)
  rebuilt = _build(corpus)
  assert calls == [os.path.abspath(corpus['paths'][1])]
  assert rebuilt.num_computed == 1 and rebuilt.store.num_examples[1] == 5
  # The superseded record stays in its shard but is never read.
  _assert_same_clips(rebuilt.store, _in_memory(corpus))


def test_unreadable_files_are_listed_and_skipped(corpus, tmp_path):
  bad = tmp_path / 'audio' / 'bad.wav'
  bad.write_bytes(b'not audio at all')
  nan = np.full(20000, 0.1)
  nan[[10, 500]] = np.nan
  nan_path = tmp_path / 'audio' / 'nan.wav'
  soundfile.write(str(nan_path), nan, 16000, subtype='FLOAT')
  corpus['ids'] = corpus['ids'][:2] + ['bad', 'nan'] + corpus['ids'][2:4]
  corpus['paths'] = corpus['paths'][:2] + [str(bad), str(nan_path)] + corpus[
      'paths'][2:4]
  corpus['labels'] = corpus['labels'][:2] + [[0], [1]] + corpus['labels'][2:4]
  result = _build(corpus)
  assert [path for path, _ in result.failures] == [str(bad), str(nan_path)]
  assert all(reason for _, reason in result.failures)
  assert 'NaN' in result.failures[1][1] or 'nan' in result.failures[1][1]
  assert list(result.store.ids) == ['clip0', 'clip1', 'clip2', 'clip3']
  assert result.num_computed == 4
  # Failures are not stored: a rerun tries them again, and says so again.
  again = _build(corpus)
  assert again.num_computed == 0 and again.failures == result.failures
  with pytest.raises(ValueError, match='none of the 1 audio files'):
    example_store.build(corpus['store'], ['bad'], [str(bad)], [[0]],
                        corpus['label_map'], PARAMS, show_progress=False)


def test_subset_yields_exactly_those_clips(corpus):
  store = _build(corpus).store
  clip_set = _in_memory(corpus)
  mask = np.array([True, False, True, True, False, False, True, False])
  _assert_same_clips(store.subset(mask), clip_set.subset(mask))
  _assert_same_clips(store.subset([6, 0, 3]), clip_set.subset([6, 0, 3]))
  assert not list(store.subset([]).inference_batches(8))
  with pytest.raises(ValueError, match='each clip once'):
    store.subset([1, 1])


def _window_owner(row, clip_set, candidates):
  """The clip of which `row` is a contiguous window."""
  for i in sorted(candidates):
    clip = clip_set.clip(i)
    for offset in range(len(clip) - len(row) + 1):
      if np.array_equal(clip[offset:offset + len(row)], row):
        return i
  raise AssertionError('a training row is no window of any clip')


@pytest.mark.parametrize('max_examples', [None, 2])
def test_training_batches_are_windows_of_every_clip_once(corpus, max_examples):
  store = _build(corpus).store
  clip_set = _in_memory(corpus)
  rng = np.random.default_rng(0)
  batches = list(store.training_batches(3, max_examples, rng))
  assert len(batches) == 3  # ceil(8 / 3), as ClipSet.training_batches.
  remaining = set(range(len(clip_set)))
  for features, mask, labels in batches:
    features, mask, labels = features.numpy(), mask.numpy(), labels.numpy()
    assert features.shape[1] == mask.sum(axis=1).max()  # The longest clip.
    for row in range(len(features)):
      n = int(mask[row].sum())
      expected = clip_set.num_examples if max_examples is None else np.minimum(
          clip_set.num_examples, max_examples)
      i = _window_owner(features[row, :n], clip_set, remaining)
      assert n == expected[i]
      np.testing.assert_array_equal(labels[row], clip_set.labels[i])
      remaining.remove(i)
  assert not remaining
  # Another epoch (the rng moved on) comes in another order.
  again = list(store.training_batches(3, max_examples, rng))
  assert not all(np.array_equal(a[2], b[2]) for a, b in zip(batches, again))
  # Balanced sampling: len(store) clips drawn with replacement.
  sampled = list(store.training_batches(
      3, max_examples, rng, sampling=training.sampling_probabilities(
          store.labels)))
  assert sum(len(b[0]) for b in sampled) == len(store)


def test_clips_without_examples_and_other_settings(corpus):
  drop = dataclasses.replace(PARAMS, short_clip_policy='drop')
  corpus['store'] += '_drop'
  store = _build(corpus, params=drop).store
  assert store.num_examples[5] == 0  # The 0.5 s clip.
  _assert_same_clips(store, _in_memory(corpus, drop))
  with pytest.raises(ValueError, match='other settings.*short_clip_policy'):
    _build(corpus, params=PARAMS)


class _MaskedMean(keras.layers.Layer):
  """[b, t, 96, 64], [b, t] -> [b, 64]: the mean over real examples."""

  def call(self, examples, mask):
    per_example = tf.reduce_mean(examples, axis=2)  # [b, t, 64]
    weights = mask[..., None]
    return tf.reduce_sum(per_example * weights, axis=1) / tf.maximum(
        tf.reduce_sum(weights, axis=1), 1.0)


def _tiny_model(num_classes):
  examples = keras.Input((None, 96, 64), name='examples')
  mask = keras.Input((None,), name='mask')
  pooled = _MaskedMean()(examples, mask)
  out = keras.layers.Dense(num_classes, activation='sigmoid')(pooled)
  return keras.Model({'examples': examples, 'mask': mask}, out)


def test_fit_and_predict_on_the_store(corpus):
  store = _build(corpus).store
  clip_set = _in_memory(corpus)
  keras.utils.set_random_seed(0)
  model = _tiny_model(3)
  options = training.TrainOptions(epochs=3, batch_size=3, max_examples=2,
                                  learning_rate=1e-2, verbose=False)
  result = training.fit(model, store.subset(np.arange(8) < 6),
                        store.subset(np.arange(8) >= 5), 'examples', options)
  assert len(result.history) == 3
  assert all(np.isfinite(h['loss']) for h in result.history)
  predictor = training.Predictor(model, 'examples', examples_per_batch=5)
  np.testing.assert_allclose(predictor(store), predictor(clip_set),
                             rtol=1e-5, atol=1e-6)


def test_finetune_streams_from_a_reused_store(recipe_checkpoint, tmp_path,
                                              monkeypatch):
  from classifier import evaluate  # pylint: disable=import-outside-toplevel
  from classifier import train  # pylint: disable=import-outside-toplevel
  root = tmp_path / 'audio'
  train_csv, label_map = synthetic.tone_noise_task(root, 8, seed=31,
                                                   csv_name='train.csv')
  eval_csv, _ = synthetic.tone_noise_task(root, 4, seed=32,
                                          csv_name='eval.csv')
  kwargs = dict(label_map=label_map, finetune=True,
                checkpoint=str(recipe_checkpoint), train_csv=train_csv,
                eval_csv=eval_csv, head='mean_mlp',
                head_options={'hidden_units': 8, 'num_layers': 1},
                freeze='all', options=training.TrainOptions(
                    epochs=1, batch_size=4, verbose=False))
  first = tmp_path / 'first'
  metrics = train.train(model_dir=str(first), **kwargs)
  config = json.loads((first / 'config.json').read_text())
  store_dir = str(first / train.DEFAULT_EXAMPLE_STORE)
  assert config['example_store'] == store_dir
  assert config['skipped_audio'] == 0
  assert metrics['num_train_clips'] + metrics['num_validation_clips'] == 12

  # A later run (here: evaluation) finds every clip in the store.
  calls = _count_computations(monkeypatch)
  summary = evaluate.evaluate(first, csv_path=eval_csv,
                              output_dir=str(tmp_path / 'eval'))
  assert not calls
  assert summary['mAP'] == pytest.approx(metrics['validation']['mAP'],
                                         abs=1e-6)
