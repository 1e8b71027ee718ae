"""k-fold training (`classifier.train --folds K [--refit]`): folds, ensembles, figures.

A small synthetic task trained with 3 folds and then 3 models refit on all
non-test clips (the default with folds): the ensemble saved as one model
must give the mean of its members' probabilities, evaluate on the same test
clips as a single model of the same split seed, and report each metric's
mean and spread over the fold models, their out-of-fold figures, and the
test figures of the fold ensemble beside those of the refit one.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from classifier import data
from classifier import evaluate
from classifier import metrics
from classifier import model_dir
from classifier import synthetic
from classifier import train
from classifier import training

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
_HEAD = dict(hidden_units=32, example_units=16, attention_heads=2)


def test_fold_assignment_keeps_the_single_split_test_clips():
  ids = [f'clip{i}' for i in range(3000)]
  folds = data.fold_assignment(ids, 5, test_fraction=0.1, seed=7)
  single = data.split_assignment(ids, 0.1, 0.1, seed=7)
  # The same hash: the test clips are those of a single-model split.
  np.testing.assert_array_equal(folds < 0, single == data.TEST)
  counts = np.bincount(folds[folds >= 0], minlength=5)
  assert counts.sum() == np.sum(single != data.TEST)
  # Equal folds in expectation: 540 each, binomial spread ~21.
  assert np.all(np.abs(counts - counts.mean()) < 100), counts
  # A clip's fold depends on its id and the seed only.
  np.testing.assert_array_equal(
      data.fold_assignment(ids[::-1], 5, 0.1, seed=7), folds[::-1])
  np.testing.assert_array_equal(
      data.fold_assignment(ids[:10], 5, 0.1, seed=7), folds[:10])
  assert not np.array_equal(data.fold_assignment(ids, 5, 0.1, seed=8), folds)
  no_test = data.fold_assignment(ids, 4)
  assert no_test.min() == 0 and no_test.max() == 3


@pytest.mark.parametrize('kwargs', [dict(num_folds=1),
                                    dict(num_folds=3, test_fraction=1.0)])
def test_fold_assignment_refuses_bad_arguments(kwargs):
  with pytest.raises(ValueError):
    data.fold_assignment(['a', 'b'], **kwargs)


def test_summarize_runs_is_mean_and_sample_std():
  runs = [{'mAP': 0.3, 'AUC': 0.9, 'num_clips': 5},
          {'mAP': 0.5, 'AUC': float('nan'), 'num_clips': 5},
          {'mAP': 0.4, 'AUC': 0.8, 'num_clips': 5}]
  summary = metrics.summarize_runs(runs)
  assert summary['mAP']['mean'] == pytest.approx(0.4)
  assert summary['mAP']['std'] == pytest.approx(np.std([0.3, 0.5, 0.4],
                                                       ddof=1))
  assert (summary['mAP']['min'], summary['mAP']['max']) == (0.3, 0.5)
  # Undefined values are left out; integer counts are not metrics.
  assert summary['AUC']['mean'] == pytest.approx(0.85)
  assert 'num_clips' not in summary


@pytest.fixture(scope='module')
def task(tmp_path_factory):
  root = tmp_path_factory.mktemp('folds_task')
  synthetic.write_label_map(root / 'labels.csv', ['a', 'b', 'c'])
  ids, clips, label_lists = synthetic.embedding_task(300, num_classes=3,
                                                     seed=5)
  synthetic.write_embedding_records(root / 'train.tfrecord', ids, clips,
                                    label_lists, 'uint8')
  return root


@pytest.fixture(scope='module')
def three_folds(task, tmp_path_factory):
  out = tmp_path_factory.mktemp('three_folds') / 'model'
  options = training.TrainOptions(epochs=10, batch_size=32,
                                  learning_rate=3e-3, verbose=False)
  result = train.train(label_map=str(task / 'labels.csv'), model_dir=str(out),
                       train_records=str(task / 'train.tfrecord'),
                       test_split=0.2, split_seed=1, folds=3,
                       head='attention', head_options=_HEAD, options=options)
  return out, result


def test_folds_report_every_fold_and_their_spread(three_folds):
  out, result = three_folds
  assert result['folds'] == 3
  fold_models = result['fold_models']
  assert [m['fold'] for m in fold_models] == [1, 2, 3]
  # Every non-test clip validates exactly one fold model.
  assert sum(m['num_validation_clips'] for m in fold_models) == result[
      'num_validation_clips'] == result['validation']['num_clips']
  for m in fold_models:
    assert m['num_train_clips'] + m['num_validation_clips'] == result[
        'num_validation_clips']
  for split in ('validation', 'test'):
    maps = [m[split]['mAP'] for m in fold_models]
    summary = result['fold_summary'][split]['mAP']
    assert summary['mean'] == pytest.approx(np.mean(maps))
    assert summary['std'] == pytest.approx(np.std(maps, ddof=1))
  # The model learnt: well above chance (mAP ~ prevalence ~ 0.5).
  assert result['test']['mAP'] > 0.7, result['test']
  on_disk = json.loads((out / model_dir.METRICS_FILE).read_text())
  assert on_disk['fold_summary']['test']['mAP']['mean'] == pytest.approx(
      result['fold_summary']['test']['mAP']['mean'])
  history = json.loads((out / model_dir.HISTORY_FILE).read_text())
  names = ['fold1', 'fold2', 'fold3', 'refit1', 'refit2', 'refit3']
  assert sorted({record['model'] for record in history}) == names
  assert sorted(os.listdir(out / model_dir.LOG_DIR)) == names
  config = json.loads((out / model_dir.CONFIG_FILE).read_text())
  assert config['split']['folds'] == 3 and config['refit']
  # Refit: every non-test clip, every epoch, nothing chosen by validation.
  assert result['refit'] and result['num_train_clips'] == result[
      'num_validation_clips']
  assert [m['epochs_run'] for m in result['refit_models']] == [10, 10, 10]
  refit_history = [r for r in history if r['model'] == 'refit1']
  assert len(refit_history) == 10
  assert all(r['val_mAP'] is None for r in refit_history)  # NaN -> null.
  assert result['test_validated_models']['num_clips'] == result[
      'num_test_clips']


def test_ensemble_is_the_mean_of_its_refit_models(three_folds, task):
  out, result = three_folds
  loaded = model_dir.load(out)
  clip_set, _ = data.load_records(str(task / 'train.tfrecord'),
                                  loaded.label_map)
  features, mask = clip_set.padded_batch(np.arange(40))
  inputs = {'embeddings': features, 'mask': mask}
  assert [layer.name for layer in loaded.model.layers
          if layer.name.startswith(('fold', 'refit'))] == [
              'refit1', 'refit2', 'refit3']
  members = [loaded.model.get_layer(f'refit{k}') for k in (1, 2, 3)]
  expected = np.mean([m(inputs, training=False).numpy() for m in members],
                     axis=0)
  np.testing.assert_allclose(loaded.model(inputs, training=False).numpy(),
                             expected, rtol=1e-6, atol=1e-7)
  # The members are different models (other data, other seeds).
  assert not np.allclose(members[0](inputs).numpy(),
                         members[1](inputs).numpy())

  # evaluate --split=test finds the held-out clips and the same figures.
  summary = evaluate.evaluate(out, records=str(task / 'train.tfrecord'),
                              split='test', output_dir=str(out / 'eval'))
  assert summary['num_clips'] == result['num_test_clips']
  assert summary['mAP'] == pytest.approx(result['test']['mAP'], abs=1e-6)
  with pytest.raises(ValueError, match='no validation split'):
    evaluate.evaluate(out, records=str(task / 'train.tfrecord'),
                      split='validation', output_dir=str(out / 'eval'))


def test_folds_share_the_single_models_test_clips(three_folds, task,
                                                  tmp_path):
  _, result = three_folds
  options = training.TrainOptions(epochs=1, batch_size=32, verbose=False)
  single = train.train(label_map=str(task / 'labels.csv'),
                       model_dir=str(tmp_path / 'single'),
                       train_records=str(task / 'train.tfrecord'),
                       validation_split=0.2, test_split=0.2, split_seed=1,
                       head='mean_mlp', head_options={'hidden_units': 16},
                       options=options)
  assert single['num_test_clips'] == result['num_test_clips']


def test_folds_refuse_eval_data_and_bad_counts(task, tmp_path):
  options = training.TrainOptions(epochs=1, verbose=False)
  common = dict(label_map=str(task / 'labels.csv'),
                model_dir=str(tmp_path / 'm'),
                train_records=str(task / 'train.tfrecord'), options=options)
  with pytest.raises(ValueError, match='own fold'):
    train.train(eval_records=str(task / 'train.tfrecord'), folds=2, **common)
  with pytest.raises(ValueError, match='folds'):
    train.train(folds=0, **common)


def test_folds_cli(task, tmp_path):
  out = tmp_path / 'cli'
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  result = subprocess.run(
      [sys.executable, '-m', 'classifier.train',
       f'--train_records={task / "train.tfrecord"}', '--folds=2',
       '--test_split=0.2', f'--label_map={task / "labels.csv"}',
       f'--model_dir={out}', '--head=mean_mlp', '--hidden_units=16',
       '--epochs=2', '--batch_size=32', '--norefit', '--noprogress'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert '2 fold models' in result.stdout
  assert 'test, one fold model: mAP' in result.stdout
  assert 'test, ensemble: mAP' in result.stdout
  assert 'refit' not in result.stdout
  loaded = model_dir.load(out)
  assert [layer.name for layer in loaded.model.layers
          if layer.name.startswith(('fold', 'refit'))] == ['fold1', 'fold2']
  with pytest.raises(ValueError, match='fold models'):
    evaluate.evaluate(out, records=str(task / 'train.tfrecord'),
                      split='validation', output_dir=str(tmp_path / 'eval'))


def test_cli_default_recipe_for_heads(task, tmp_path):
  """No --folds: 5 folds and refit for heads; --validation_split: one model."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  common = [sys.executable, '-m', 'classifier.train',
            f'--train_records={task / "train.tfrecord"}',
            f'--label_map={task / "labels.csv"}', '--head=mean_mlp',
            '--hidden_units=8', '--epochs=1', '--batch_size=64',
            '--noprogress']
  default = subprocess.run(common + [f'--model_dir={tmp_path / "d"}'],
                           cwd=REPO_ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
  assert default.returncode == 0, default.stderr[-3000:]
  config = json.loads((tmp_path / 'd' / model_dir.CONFIG_FILE).read_text())
  assert config['split']['folds'] == train.CLI_HEAD_FOLDS and config['refit']
  single = subprocess.run(common + [f'--model_dir={tmp_path / "s"}',
                                    '--validation_split=0.2'],
                          cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
  assert single.returncode == 0, single.stderr[-3000:]
  config = json.loads((tmp_path / 's' / model_dir.CONFIG_FILE).read_text())
  assert 'folds' not in config['split'] and not config['refit']


def test_refit_of_one_model_needs_a_validation_split(task, tmp_path):
  options = training.TrainOptions(epochs=1, verbose=False)
  with pytest.raises(ValueError, match='--refit'):
    train.train(label_map=str(task / 'labels.csv'),
                model_dir=str(tmp_path / 'm'),
                train_records=str(task / 'train.tfrecord'),
                eval_records=str(task / 'train.tfrecord'), refit=True,
                options=options)
