"""classifier.heads and the training loop: masking, saving, learning a synthetic task."""

import json
import os

import keras
import numpy as np
import pytest

from classifier import evaluate
from classifier import heads
from classifier import model_dir
from classifier import synthetic
from classifier import train
from classifier import training

NUM_CLASSES = 5
SMALL = {
    'mean_mlp': dict(hidden_units=64, num_layers=1),
    'attention': dict(hidden_units=64, num_layers=1, example_units=32,
                      attention_heads=4),
}


def _batch(seed=0, batch=3, time=4):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, time, 128)).astype(np.float32)
  mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], np.float32)
  return x, mask


@pytest.mark.parametrize('head', heads.HEADS)
def test_padding_does_not_change_outputs(head):
  keras.utils.set_random_seed(0)
  model = heads.build_head(NUM_CLASSES, head, **SMALL[head])
  x, mask = _batch()
  out = np.array(model({'embeddings': x, 'mask': mask}))
  assert out.shape == (3, NUM_CLASSES)
  assert np.all((out > 0) & (out < 1))
  garbage = x.copy()
  garbage[mask == 0] = 1e3
  np.testing.assert_allclose(
      model({'embeddings': garbage, 'mask': mask}), out, atol=1e-6)
  # Batched with padding == the clip alone, unpadded.
  alone = model({'embeddings': x[:1, :2], 'mask': mask[:1, :2]})
  np.testing.assert_allclose(alone, out[:1], atol=1e-6)


@pytest.mark.parametrize('head', heads.HEADS)
def test_saved_head_reloads_with_plain_load_model(head, tmp_path):
  keras.utils.set_random_seed(0)
  model = heads.build_head(NUM_CLASSES, head, feature_mean=np.full(128, 0.1),
                           feature_std=np.full(128, 2.0), **SMALL[head])
  x, mask = _batch(1)
  path = str(tmp_path / 'head.keras')
  model.save(path)
  reloaded = keras.models.load_model(path)
  np.testing.assert_array_equal(reloaded({'embeddings': x, 'mask': mask}),
                                model({'embeddings': x, 'mask': mask}))


def test_attention_pooling_attends_to_the_informative_example():
  layer = heads.AttentionPooling(num_heads=1, include_mean=False)
  x = np.zeros((1, 3, 2), np.float32)
  x[0, 1] = [5.0, 7.0]
  layer.build((None, None, 2))
  # Scores = first feature * 10: example 1 gets almost all the weight.
  layer.scores.set_weights([np.array([[10.0], [0.0]], np.float32),
                            np.zeros(1, np.float32)])
  pooled = np.array(layer(x, np.ones((1, 3), np.float32)))
  np.testing.assert_allclose(pooled, [[5.0, 7.0]], atol=1e-3)
  # Masking example 1 out leaves the zeros.
  pooled = np.array(layer(x, np.array([[1, 0, 1]], np.float32)))
  np.testing.assert_allclose(pooled, [[0.0, 0.0]], atol=1e-6)


def test_build_head_rejects_bad_options():
  with pytest.raises(ValueError, match='head must be one of'):
    heads.build_head(3, 'max_pool')
  with pytest.raises(ValueError, match='no option'):
    heads.build_head(3, 'mean_mlp', attention_heads=4)
  with pytest.raises(ValueError, match='dropout'):
    heads.build_head(3, 'mean_mlp', dropout=1.0)


def test_spec_augment_masks_in_training_only():
  layer = heads.SpecAugment(time_masks=2, max_time_frames=10, freq_masks=2,
                            max_freq_bands=8, seed=3)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((4, 2, 96, 64)).astype(np.float32) + 3.0
  np.testing.assert_array_equal(layer(x, training=False), x)
  out = np.array(layer(x, training=True))
  changed = out != x
  assert 0 < changed.mean() < 0.5
  # Masked cells hold their example's mean log-mel value.
  fill = x.mean(axis=(2, 3), keepdims=True) * np.ones_like(x)
  np.testing.assert_allclose(out[changed], fill[changed], rtol=1e-5)
  # Masks are whole frames or whole bands: a masked frame is masked in all
  # 64 bands, or the cell lies in a masked band.
  rows = changed.all(axis=3)
  columns = changed.all(axis=2)
  assert np.array_equal(changed, rows[..., :, None] | columns[..., None, :])


def test_example_encoder_runs_backbone_on_real_examples_only():
  keras.utils.set_random_seed(0)
  inputs = keras.Input((96, 64))
  outputs = keras.layers.Dense(8)(keras.layers.Flatten()(inputs))
  backbone = keras.Model(inputs, outputs)
  encoder = heads.ExampleEncoder(backbone)
  rng = np.random.default_rng(1)
  examples = rng.standard_normal((2, 3, 96, 64)).astype(np.float32)
  mask = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
  out = np.array(encoder(examples, mask))
  assert out.shape == (2, 3, 8)
  expected = np.array(backbone(examples.reshape(-1, 96, 64))).reshape(2, 3, 8)
  np.testing.assert_allclose(out[mask == 1], expected[mask == 1], atol=1e-5)
  np.testing.assert_array_equal(out[mask == 0], 0.0)


@pytest.fixture(scope='module')
def synthetic_records(tmp_path_factory):
  """A multiple-instance embedding task as TFRecords (uint8 and float32)."""
  root = tmp_path_factory.mktemp('synthetic_records')
  label_map = root / 'labels.csv'
  synthetic.write_label_map(label_map, [f'class{i}' for i in range(6)])
  ids, clips, label_lists = synthetic.embedding_task(480, num_classes=6,
                                                     seed=7)
  paths = {}
  for fmt in ('uint8', 'float32'):
    os.makedirs(root / fmt)
    # Two shards, so the glob reads several files.
    for shard in range(2):
      part = slice(shard, None, 2)
      synthetic.write_embedding_records(
          root / fmt / f'part{shard}.tfrecord', ids[part], clips[part],
          label_lists[part], fmt)
    paths[fmt] = str(root / fmt / '*.tfrecord')
  return paths, str(label_map)


@pytest.mark.parametrize('head,embedding_format', [('mean_mlp', 'float32'),
                                                   ('attention', 'uint8')])
def test_heads_learn_synthetic_task(head, embedding_format, synthetic_records,
                                    tmp_path):
  patterns, label_map = synthetic_records
  options = training.TrainOptions(epochs=8, batch_size=32,
                                  learning_rate=3e-3, verbose=False, seed=1)
  metrics = train.train(
      label_map=label_map, model_dir=str(tmp_path), train_records=patterns[
          embedding_format], validation_split=0.15, test_split=0.2,
      head=head, head_options=SMALL[head], options=options)
  # Chance mAP is the class prevalence, about 0.25 (chance lwlrap about
  # 0.4); a learnt model is near 1.
  assert metrics['test']['mAP'] > 0.9, metrics['test']
  assert metrics['test']['lwlrap'] > 0.8
  assert metrics['validation']['mAP'] == pytest.approx(
      max(r['val_mAP'] for r in json.load(
          open(tmp_path / model_dir.HISTORY_FILE))), abs=1e-6)
  config = json.load(open(tmp_path / model_dir.CONFIG_FILE))
  assert config['embedding_format'] == embedding_format
  assert config['input'] == 'embeddings'
  # The saved model, reloaded, finds the same test clips and scores.
  summary = evaluate.evaluate(tmp_path, records=patterns[embedding_format],
                              split='test')
  assert summary['num_clips'] == metrics['num_test_clips']
  for key in ('mAP', 'lwlrap', 'AUC', 'micro_f1'):
    assert summary[key] == pytest.approx(metrics['test'][key], abs=1e-6)


def test_mixup_weighting_and_balanced_sampling_still_learn(synthetic_records,
                                                           tmp_path):
  patterns, label_map = synthetic_records
  options = training.TrainOptions(
      epochs=8, batch_size=32, learning_rate=3e-3, verbose=False,
      mixup_alpha=0.4, label_smoothing=0.05, class_weighting='inverse_sqrt',
      balanced_sampling=True, warmup_epochs=1)
  metrics = train.train(
      label_map=label_map, model_dir=str(tmp_path),
      train_records=patterns['float32'], validation_split=0.15,
      test_split=0.2, head='mean_mlp', head_options=SMALL['mean_mlp'],
      options=options)
  assert metrics['test']['mAP'] > 0.85, metrics['test']


def test_weight_decay_and_example_dropout_still_learn(synthetic_records,
                                                     tmp_path):
  """The head recipe's regularizers (AdamW decay, dropped examples)."""
  patterns, label_map = synthetic_records
  options = training.TrainOptions(epochs=8, batch_size=32,
                                  learning_rate=3e-3, verbose=False, seed=1,
                                  weight_decay=0.1, example_dropout=0.25)
  metrics = train.train(
      label_map=label_map, model_dir=str(tmp_path),
      train_records=patterns['uint8'], validation_split=0.15,
      test_split=0.2, head='attention', head_options=SMALL['attention'],
      options=options)
  # Chance is about 0.25; regularized, 8 epochs learn a little less.
  assert metrics['test']['mAP'] > 0.85, metrics['test']
  config = json.load(open(tmp_path / model_dir.CONFIG_FILE))
  assert config['training']['weight_decay'] == 0.1
  assert config['training']['example_dropout'] == 0.25


def test_decay_only_on_kernels():
  head = heads.build_head(3, 'mean_mlp', hidden_units=8, num_layers=1)
  options = training.TrainOptions(weight_decay=0.1)
  optimizer = training._optimizer(1e-3, 10, 0, options,
                                  head.trainable_variables)
  assert optimizer.weight_decay == pytest.approx(0.1)
  decayed = {v.path for v in head.trainable_variables
             if optimizer._use_weight_decay(v)}
  assert decayed and all(path.endswith('kernel') for path in decayed)
  plain = training._optimizer(1e-3, 10, 0, training.TrainOptions(),
                              head.trainable_variables)
  assert not plain.weight_decay


@pytest.mark.parametrize('bad', [dict(weight_decay=-1.0),
                                 dict(example_dropout=1.0),
                                 dict(example_dropout=-0.1)])
def test_train_options_refuse_bad_regularizers(bad):
  with pytest.raises(ValueError):
    training.TrainOptions(**bad)


def test_sampling_and_weights_favour_rare_classes():
  labels = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], np.float32)
  p = training.sampling_probabilities(labels)
  assert p.sum() == pytest.approx(1.0)
  assert p[3] == pytest.approx(3 * p[0])
  w = training.positive_weights(labels, 'inverse_sqrt')
  # Mean count 2: weights sqrt(2/3) and sqrt(2/1).
  np.testing.assert_allclose(w, [np.sqrt(2 / 3), np.sqrt(2)], rtol=1e-6)
  np.testing.assert_array_equal(training.positive_weights(labels, 'none'),
                                [1, 1])
