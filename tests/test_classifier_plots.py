"""The model directory's pictures: training.png and per_class_ap.png.

From synthetic files (one model; fold models with refits whose validation
mAP is null; AudioSet's 527 classes) and from real tiny trainings (a head,
a fine-tuned VGGish): each picture must be a valid PNG of a sensible size.
Without matplotlib (the `analysis` extra) training still writes the model
directory and says in one warning what is missing.
"""

import json
import logging
import sys

import numpy as np
import pytest

from classifier import model_dir
from classifier import plots
from classifier import synthetic
from classifier import train
from classifier import training
from vggish import extras
from vggish import labels as labels_lib

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
_MATPLOTLIB_MODULES = ('matplotlib', 'matplotlib.figure',
                       'matplotlib.backends', 'matplotlib.backends.backend_agg')


def assert_png(path, min_side=200, max_side=2000):
  """A PNG that matplotlib reads back, of a sensible size, not blank."""
  from matplotlib import image
  with open(path, 'rb') as f:
    assert f.read(8) == PNG_MAGIC, path
  pixels = image.imread(str(path))
  height, width = pixels.shape[:2]
  assert min_side <= height <= max_side and min_side <= width <= max_side, (
      pixels.shape)
  assert pixels.std() > 0.01  # Something is drawn.


def _history(epochs, seed, model=None, validated=True):
  rng = np.random.default_rng(seed)
  records = []
  for epoch in range(1, epochs + 1):
    record = {'epoch': epoch, 'loss': 0.05 / epoch + 0.001 * rng.random(),
              'val_loss': 0.03 / np.sqrt(epoch) if validated else float('nan'),
              'val_mAP': (0.3 + 0.05 * np.log(epoch) + 0.01 * rng.random()
                          if validated else float('nan')),
              'learning_rate': 1e-3, 'seconds': 1.0}
    if model:
      record['model'] = model
    records.append(record)
  return records


def _per_class(num_classes, seed, num_without_positives=0):
  rng = np.random.default_rng(seed)
  positives = rng.integers(1, 20, num_classes)
  ap = rng.beta(2.0, 3.0, num_classes)
  positives[:num_without_positives] = 0
  ap[:num_without_positives] = np.nan
  return {'num_positives': positives, 'average_precision': ap,
          'auc': np.full(num_classes, 0.9)}


def _model_dir(directory, history, metrics, per_class, names,
               split='validation'):
  """A model directory's plot inputs (what `classifier.train` writes)."""
  directory.mkdir(parents=True, exist_ok=True)
  label_map = labels_lib.LabelMap(tuple(
      (i, f'/m/x{i}', name) for i, name in enumerate(names)))
  model_dir.write_json(directory / model_dir.HISTORY_FILE, history)
  model_dir.write_json(directory / model_dir.METRICS_FILE, metrics)
  model_dir.write_json(directory / model_dir.CONFIG_FILE,
                       {'head': 'attention', 'input': 'embeddings'})
  model_dir.write_per_class_csv(directory / f'{split}_per_class.csv',
                                label_map, per_class)
  return directory


def test_per_class_csv_round_trip(tmp_path):
  label_map = labels_lib.LabelMap(((0, '/m/a', 'a'), (1, '/m/b', 'b, c'),
                                   (2, '', 'd')))
  per_class = _per_class(3, seed=0, num_without_positives=1)
  model_dir.write_per_class_csv(tmp_path / 'x.csv', label_map, per_class)
  read_map, read = model_dir.read_per_class_csv(tmp_path / 'x.csv')
  assert read_map == label_map
  assert read['num_positives'].dtype == np.int64
  np.testing.assert_array_equal(read['num_positives'],
                                per_class['num_positives'])
  # Written with 6 significant digits; undefined stays NaN.
  np.testing.assert_allclose(read['average_precision'],
                             per_class['average_precision'], rtol=1e-5)
  with pytest.raises(ValueError, match='not a per-class metrics CSV'):
    (tmp_path / 'bad.csv').write_text('a,b\n1,2\n')
    model_dir.read_per_class_csv(tmp_path / 'bad.csv')


def test_one_model(tmp_path):
  directory = _model_dir(
      tmp_path / 'model', _history(8, seed=1),
      {'folds': 1, 'refit': False, 'best_epoch': 6, 'epochs_run': 8,
       'validation': {'mAP': 0.39, 'num_clips': 40}},
      _per_class(5, seed=2, num_without_positives=1),
      ['Speech', 'Music', 'Dog', 'Vehicle horn, car horn, honking', 'Rain'])
  written = plots.write_model_plots(directory)
  assert written == [str(directory / plots.TRAINING_PLOT),
                     str(directory / plots.PER_CLASS_PLOT)]
  for path in written:
    assert_png(path)
  # Atomic writes leave no temporary file behind.
  assert sorted(p.name for p in directory.glob('*.png*')) == [
      plots.PER_CLASS_PLOT, plots.TRAINING_PLOT]


def test_folds_and_refits_with_null_map(tmp_path):
  history = (_history(5, 1, 'fold1') + _history(7, 2, 'fold2') +
             _history(6, 3, 'fold3') +
             [r for k in (1, 2, 3)
              for r in _history(8, 3 + k, f'refit{k}', validated=False)])
  metrics = {'folds': 3, 'refit': True,
             'fold_models': [{'fold': 1, 'best_epoch': 4},
                             {'fold': 2, 'best_epoch': 7},
                             {'fold': 3, 'best_epoch': 2}],
             'refit_models': [{'model': f'refit{k}'} for k in (1, 2, 3)],
             'validation': {'mAP': 0.41}, 'test': {'mAP': 0.4}}
  directory = _model_dir(tmp_path / 'model', history, metrics,
                         _per_class(4, seed=5), list('abcd'), split='test')
  # The refits' NaN validation figures are stored as null.
  stored = json.loads((directory / model_dir.HISTORY_FILE).read_text())
  assert stored[-1]['model'] == 'refit3' and stored[-1]['val_mAP'] is None
  names = [name for name, _ in plots._curves(stored)]
  assert names == ['fold1', 'fold2', 'fold3', 'refit1', 'refit2', 'refit3']
  assert plots._chosen_epochs(names, metrics) == {'fold1': 4, 'fold2': 7,
                                                  'fold3': 2}
  for path in plots.write_model_plots(directory):
    assert_png(path)


def test_one_validated_model_then_a_refit_marks_the_validated_one():
  # --folds=1 --refit: metrics.json's best_epoch is that of 'fold1'.
  assert plots._chosen_epochs(['fold1', 'refit1'], {'best_epoch': 3}) == {
      'fold1': 3}
  assert plots._chosen_epochs([None], {'best_epoch': 5}) == {None: 5}


def test_many_classes_prefers_the_test_split(tmp_path):
  names = [f'AudioSet class {i}, with a rather long display name'
           for i in range(527)]
  directory = _model_dir(
      tmp_path / 'model', _history(3, seed=0),
      {'folds': 1, 'best_epoch': 3, 'epochs_run': 3,
       'test': {'mAP': 0.33, 'num_clips': 2252}},
      _per_class(527, seed=7, num_without_positives=12), names, split='test')
  # A validation CSV too: the held-out test split is the one drawn.
  model_dir.write_per_class_csv(
      directory / 'validation_per_class.csv',
      model_dir.read_per_class_csv(directory / 'test_per_class.csv')[0],
      _per_class(527, seed=8))
  assert plots._held_out_split(str(directory)) == 'test'
  plots.write_model_plots(directory)
  assert_png(directory / plots.PER_CLASS_PLOT)


def test_without_history_draws_what_it_can(tmp_path, caplog):
  directory = _model_dir(tmp_path / 'model', [], {}, _per_class(3, 0),
                         list('abc'))
  (directory / model_dir.HISTORY_FILE).unlink()
  with caplog.at_level(logging.WARNING):
    written = plots.write_model_plots(directory)
  assert written == [str(directory / plots.PER_CLASS_PLOT)]
  assert 'no history.json' in caplog.text
  with pytest.raises(ValueError, match='is it a model directory'):
    plots.write_model_plots(tmp_path)
  with pytest.raises(ValueError, match='no epoch'):
    plots.draw_training([], {}, {}, str(tmp_path / 'empty.png'))


def test_cli_redraws_an_existing_directory(tmp_path, capsys):
  directory = _model_dir(tmp_path / 'model', _history(4, seed=0),
                         {'best_epoch': 2}, _per_class(3, 0), list('abc'))
  assert plots.main(['plots', str(directory)]) == 0
  assert f'wrote {directory / plots.TRAINING_PLOT}' in capsys.readouterr().out
  assert_png(directory / plots.TRAINING_PLOT)
  with pytest.raises(ValueError, match='give one or more model directories'):
    plots.main(['plots'])


@pytest.fixture(scope='module')
def tiny_records(tmp_path_factory):
  root = tmp_path_factory.mktemp('plots_records')
  synthetic.write_label_map(root / 'labels.csv', ['a', 'b', 'c'])
  ids, clips, label_lists = synthetic.embedding_task(160, num_classes=3,
                                                     seed=4)
  synthetic.write_embedding_records(root / 'train.tfrecord', ids, clips,
                                    label_lists, 'uint8')
  return root


def _train_head(records, out, **kwargs):
  options = training.TrainOptions(epochs=2, batch_size=32, verbose=False)
  return train.train(label_map=str(records / 'labels.csv'), model_dir=str(out),
                     train_records=str(records / '*.tfrecord'),
                     head='mean_mlp', head_options={'hidden_units': 8},
                     options=options, **kwargs)


def test_training_a_head_draws_both(tiny_records, tmp_path):
  out = tmp_path / 'model'
  _train_head(tiny_records, out, validation_split=0.25, test_split=0.25)
  assert_png(out / plots.TRAINING_PLOT)
  assert_png(out / plots.PER_CLASS_PLOT)


def test_training_with_a_refit_draws_both(tiny_records, tmp_path):
  # A validated model and one refit without validation: two named models,
  # the refit's mAP null (--folds=K --refit names K of each the same way).
  out = tmp_path / 'model'
  _train_head(tiny_records, out, validation_split=0.25, test_split=0.2,
              refit=True)
  history = json.loads((out / model_dir.HISTORY_FILE).read_text())
  assert {r['model'] for r in history} == {'fold1', 'refit1'}
  assert all(r['val_mAP'] is None for r in history if r['model'] == 'refit1')
  assert_png(out / plots.TRAINING_PLOT)
  assert_png(out / plots.PER_CLASS_PLOT)


# The session's recipe checkpoint (~20 s to build) and VGGish on 2 cores.
@pytest.mark.slow
def test_finetuning_draws_both(recipe_checkpoint, tmp_path):
  audio = tmp_path / 'audio'
  train_csv, label_map = synthetic.tone_noise_task(audio, 8, seed=3,
                                                   seconds=0.98)
  out = tmp_path / 'finetuned'
  train.train(label_map=label_map, model_dir=str(out), finetune=True,
              checkpoint=str(recipe_checkpoint), train_csv=train_csv,
              validation_split=0.5, head='mean_mlp',
              head_options={'hidden_units': 8, 'num_layers': 1},
              freeze='all',
              options=training.TrainOptions(epochs=1, batch_size=4,
                                            verbose=False))
  assert_png(out / plots.TRAINING_PLOT)
  assert_png(out / plots.PER_CLASS_PLOT)


def _hide_matplotlib(monkeypatch):
  """Makes `import matplotlib...` fail as if it were not installed."""
  for name in _MATPLOTLIB_MODULES:
    monkeypatch.setitem(sys.modules, name, None)


def test_without_matplotlib_training_warns_and_completes(
    tiny_records, tmp_path, monkeypatch, caplog):
  directory = _model_dir(tmp_path / 'synthetic', _history(2, 0), {},
                         _per_class(3, 0), list('abc'))
  _hide_matplotlib(monkeypatch)
  with pytest.raises(extras.MissingExtraError, match=r'\.\[analysis\]'):
    plots.write_model_plots(directory)
  assert plots.main(['plots', str(directory)]) == 2  # One error line.

  out = tmp_path / 'model'
  with caplog.at_level(logging.WARNING):
    metrics = _train_head(tiny_records, out, validation_split=0.25)
  assert metrics['epochs_run'] == 2
  for name in (model_dir.MODEL_FILE, model_dir.HISTORY_FILE,
               model_dir.METRICS_FILE, 'validation_per_class.csv'):
    assert (out / name).is_file(), name
  assert not list(out.glob('*.png*'))
  warnings = [r.getMessage() for r in caplog.records
              if 'training.png' in r.getMessage()]
  assert len(warnings) == 1 and 'analysis' in warnings[0], warnings
