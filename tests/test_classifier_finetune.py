"""--finetune: VGGish (recipe checkpoint) + head trained end to end on audio.

A tiny multi-label audio task: clips mixing a low tone, a high tone and noise
bursts. The recipe checkpoint is random, so this checks that the pieces train
together (frozen conv stack, ReLU'd embedding, head, two learning rates,
SpecAugment, mixup), not transfer learning. 72 M parameters on 2 cores are
slow: few, short clips, and all but fc2 of VGGish frozen.
"""

import json

import pytest

from classifier import evaluate
from classifier import finetune
from classifier import model_dir
from classifier import predict
from classifier import synthetic
from classifier import train
from classifier import training


@pytest.fixture(scope='module')
def tone_noise(tmp_path_factory):
  root = tmp_path_factory.mktemp('tone_noise')
  train_csv, label_map = synthetic.tone_noise_task(root, 40, seed=11,
                                                   csv_name='train.csv')
  eval_csv, _ = synthetic.tone_noise_task(root, 24, seed=12,
                                          csv_name='eval.csv')
  return {'root': root, 'train_csv': train_csv, 'eval_csv': eval_csv,
          'label_map': label_map}


def test_finetune_learns_tones_and_noise(tone_noise, recipe_checkpoint,
                                         tmp_path):
  out = tmp_path / 'finetuned'
  options = training.TrainOptions(
      epochs=6, batch_size=8, learning_rate=3e-3, backbone_learning_rate=1e-4,
      mixup_alpha=0.2, verbose=False, seed=0)
  metrics = train.train(
      label_map=tone_noise['label_map'], model_dir=str(out), finetune=True,
      checkpoint=str(recipe_checkpoint), train_csv=tone_noise['train_csv'],
      eval_csv=tone_noise['eval_csv'], head='mean_mlp',
      head_options={'hidden_units': 32, 'num_layers': 1}, freeze='conv_fc1',
      spec_augment=True, options=options)
  validation = metrics['validation']
  # Chance: AUC 0.5, mAP about the prevalence (0.5); learnt: near 1.
  assert validation['AUC'] > 0.9, validation
  assert validation['mAP'] > 0.85, validation
  config = json.loads((out / model_dir.CONFIG_FILE).read_text())
  assert config['input'] == 'examples'
  assert config['finetune']['freeze'] == 'conv_fc1'

  # Evaluated and used for prediction like a head: audio in, scores out.
  summary = evaluate.evaluate(out, csv_path=tone_noise['eval_csv'],
                              output_dir=str(tmp_path / 'eval'))
  assert summary['mAP'] == pytest.approx(validation['mAP'], abs=1e-6)
  rows, names, failures = predict.predict(
      out, [str(tone_noise['root'] / 'eval_0000.wav')], top_k=1)
  assert not failures and names == list(synthetic.TONE_NOISE_CLASSES)
  assert len(rows) == 1 and rows[0]['top_labels'] in names


def test_freeze_choices(recipe_checkpoint):
  model, backbone = finetune.build_model(3, None, freeze='conv')
  trainable = {layer.name for layer in backbone.layers
               if layer.trainable and layer.weights}
  assert trainable == {'fc1_1', 'fc1_2', 'fc2'}
  finetune.freeze_backbone(backbone, 'conv_fc1')
  assert {v.path.split('/')[-2] for v in backbone.trainable_variables} == {
      'fc2'}
  finetune.freeze_backbone(backbone, 'all')
  assert not backbone.trainable_variables
  # The head still trains.
  assert model.trainable_variables
  with pytest.raises(ValueError, match='freeze must be one of'):
    finetune.freeze_backbone(backbone, 'fc')


def test_finetune_folds_stream_and_save_one_ensemble(tone_noise,
                                                     recipe_checkpoint,
                                                     tmp_path):
  """--finetune --folds 2: fold and refit models stream from one store."""
  out = tmp_path / 'folds'
  options = training.TrainOptions(epochs=1, batch_size=8, learning_rate=3e-3,
                                  verbose=False, seed=0)
  metrics = train.train(
      label_map=tone_noise['label_map'], model_dir=str(out), finetune=True,
      checkpoint=str(recipe_checkpoint), train_csv=tone_noise['train_csv'],
      head='mean_mlp', head_options={'hidden_units': 16, 'num_layers': 1},
      freeze='all', folds=2, test_split=0.25, split_seed=3, options=options)
  assert metrics['folds'] == 2 and len(metrics['fold_models']) == 2
  assert metrics['num_validation_clips'] + metrics['num_test_clips'] == 40
  # The refit models trained on every non-test clip of the store.
  assert metrics['refit'] and metrics['num_train_clips'] == metrics[
      'num_validation_clips']
  loaded = model_dir.load(out)
  assert [layer.name for layer in loaded.model.layers
          if layer.name.startswith(('fold', 'refit'))] == ['refit1', 'refit2']
  # The saved ensemble scores the held-out clips as training measured them.
  summary = evaluate.evaluate(out, csv_path=tone_noise['train_csv'],
                              split='test', output_dir=str(tmp_path / 'eval'))
  assert summary['num_clips'] == metrics['num_test_clips']
  assert summary['mAP'] == pytest.approx(metrics['test']['mAP'], abs=1e-5)
