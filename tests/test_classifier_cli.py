"""The classifier CLIs end to end: train, evaluate, predict.

The prediction test runs the whole chain: audio -> tools' extractor (recipe
VGGish, recipe PCA, uint8 records) -> a head trained on those records ->
`classifier.predict` on the same audio files, which must rebuild exactly the
embeddings the head was trained on and so give the same scores.
"""

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from classifier import data
from classifier import model_dir
from classifier import predict
from classifier import synthetic
from classifier import train
from classifier import training
from vggish import corpus
from vggish import extractor

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(module, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  result = subprocess.run([sys.executable, '-m', module, *map(str, args)],
                          cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


@pytest.fixture(scope='module')
def tiny_records(tmp_path_factory):
  root = tmp_path_factory.mktemp('tiny_records')
  synthetic.write_label_map(root / 'labels.csv', ['a', 'b, with comma', 'c'])
  ids, clips, label_lists = synthetic.embedding_task(240, num_classes=3,
                                                     seed=3)
  synthetic.write_embedding_records(root / 'train.tfrecord', ids, clips,
                                    label_lists, 'uint8')
  return root


def test_train_and_evaluate_clis(tiny_records, tmp_path):
  out = tmp_path / 'model'
  stdout = _run('classifier.train',
                f'--train_records={tiny_records / "*.tfrecord"}',
                '--validation_split=0.2', '--test_split=0.2',
                f'--label_map={tiny_records / "labels.csv"}',
                f'--model_dir={out}', '--head=attention', '--epochs=4',
                '--batch_size=32', '--hidden_units=32', '--example_units=16',
                '--attention_heads=2', '--noprogress')
  assert 'test: mAP' in stdout
  for name in (model_dir.MODEL_FILE, model_dir.CONFIG_FILE,
               model_dir.LABELS_FILE, model_dir.THRESHOLDS_FILE,
               model_dir.HISTORY_FILE, model_dir.METRICS_FILE,
               'validation_per_class.csv', 'test_per_class.csv'):
    assert (out / name).is_file(), name
  assert list((out / model_dir.LOG_DIR / 'validation').glob('events.*'))
  metrics = json.loads((out / model_dir.METRICS_FILE).read_text())
  history = json.loads((out / model_dir.HISTORY_FILE).read_text())
  assert len(history) == metrics['epochs_run'] <= 4
  config = json.loads((out / model_dir.CONFIG_FILE).read_text())
  assert config['head_options']['example_units'] == 16
  with open(out / 'test_per_class.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  assert [r['display_name'] for r in rows] == ['a', 'b, with comma', 'c']

  stdout = _run('classifier.evaluate', f'--model_dir={out}',
                f'--records={tiny_records / "*.tfrecord"}', '--split=test')
  printed = dict(line.split(': ') for line in stdout.splitlines()
                 if line.startswith(('mAP:', 'lwlrap:', 'AUC:')))
  for key in ('mAP', 'lwlrap', 'AUC'):
    assert float(printed[key]) == pytest.approx(metrics['test'][key],
                                                abs=1e-4)
  evaluation = json.loads((out / 'evaluation.json').read_text())
  assert evaluation['num_clips'] == metrics['num_test_clips']


def test_evaluate_rejects_records_of_another_format(tiny_records, tmp_path):
  from classifier import evaluate
  out = tmp_path / 'model'
  options = training.TrainOptions(epochs=1, batch_size=64, verbose=False)
  train.train(label_map=str(tiny_records / 'labels.csv'), model_dir=str(out),
              train_records=str(tiny_records / '*.tfrecord'),
              head='mean_mlp', head_options={'hidden_units': 8},
              options=options)
  ids, clips, label_lists = synthetic.embedding_task(4, num_classes=3)
  synthetic.write_embedding_records(tmp_path / 'raw.tfrecord', ids, clips,
                                    label_lists, 'float32')
  with pytest.raises(ValueError, match='uint8 embeddings but these records '
                     'hold float32'):
    evaluate.evaluate(out, records=str(tmp_path / 'raw.tfrecord'))


@pytest.fixture(scope='module')
def extracted_corpus(tmp_path_factory, recipe_model, recipe_pca_params_path):
  """Tone/noise audio, extracted to uint8 records like `tools.extract`."""
  root = tmp_path_factory.mktemp('extracted')
  audio = root / 'audio'
  csv_path, label_map = synthetic.tone_noise_task(audio, 30, seed=5,
                                                  seconds=2.0)
  out = root / 'records'
  out.mkdir()
  inputs, _ = corpus.prepare_labels(corpus.read_input_csv(csv_path), out,
                                    label_map_path=label_map)
  result = extractor.extract(
      inputs, out, embedder=extractor.Embedder(recipe_model, batch_size=8),
      postprocess=True, pca_params_path=recipe_pca_params_path,
      show_progress=False)
  assert result.all_ok
  return {'audio': audio, 'csv': csv_path, 'label_map': label_map,
          'records': str(out / '*.tfrecord')}


def test_predict_cli_reproduces_the_training_embeddings(
    extracted_corpus, recipe_checkpoint, recipe_pca_params_path, tmp_path):
  out = tmp_path / 'model'
  options = training.TrainOptions(epochs=3, batch_size=8, verbose=False)
  train.train(label_map=extracted_corpus['label_map'], model_dir=str(out),
              train_records=extracted_corpus['records'],
              validation_split=0.3, head='attention',
              head_options={'hidden_units': 16, 'example_units': 16,
                            'attention_heads': 2},
              options=options, pca_params=str(recipe_pca_params_path))
  assert (out / model_dir.PCA_FILE).is_file()
  # Scores of the head on the extracted records, by clip id.
  loaded = model_dir.load(out)
  clip_set, _ = data.load_records(extracted_corpus['records'],
                                  loaded.label_map)
  expected = dict(zip(clip_set.ids, training.Predictor(
      loaded.model, loaded.input_name)(clip_set)))

  files = sorted(extracted_corpus['audio'].glob('*.wav'))[:4]
  output = tmp_path / 'predictions.csv'
  stdout = _run('classifier.predict', f'--model_dir={out}',
                f'--checkpoint={recipe_checkpoint}', f'--output={output}',
                '--top_k=2', *files)
  assert f'wrote {len(files)} rows' in stdout
  with open(output, newline='') as f:
    reader = csv.DictReader(f)
    names = list(synthetic.TONE_NOISE_CLASSES)
    assert reader.fieldnames == ['fname'] + names + [predict.TOP_LABELS]
    rows = list(reader)
  assert [r['fname'] for r in rows] == [p.name for p in files]
  for row in rows:
    scores = np.array([float(row[n]) for n in names])
    # The CSV keeps 6 decimals.
    np.testing.assert_allclose(scores, expected[row['fname'][:-4]],
                               atol=2e-6)
    best = [names[i] for i in np.argsort(-scores, kind='stable')[:2]]
    assert row[predict.TOP_LABELS].split(' | ') == best


def test_predict_without_pca_params_says_what_is_missing(
    extracted_corpus, recipe_pca_params_path, tmp_path, monkeypatch):
  out = tmp_path / 'model'
  options = training.TrainOptions(epochs=1, batch_size=8, verbose=False)
  train.train(label_map=extracted_corpus['label_map'], model_dir=str(out),
              train_records=extracted_corpus['records'],
              validation_split=0.3, head='mean_mlp',
              head_options={'hidden_units': 8}, options=options)
  monkeypatch.setenv('VGGISH_CHECKPOINT_DIR', str(tmp_path / 'empty'))
  with pytest.raises(FileNotFoundError, match='vggish_pca_params.npz'):
    predict.predict(out, [str(next(extracted_corpus['audio'].glob('*.wav')))])


@pytest.mark.parametrize('module, args, message', [
    ('classifier.train', ['--train_records=/nonexistent/*.tfrecord',
                          '--label_map=/nonexistent/labels.csv',
                          '--model_dir=/tmp/unused'], 'error: '),
    ('classifier.evaluate', ['--model_dir=/nonexistent/model',
                             '--records=/nonexistent/*.tfrecord'],
     'is not a model directory'),
    ('classifier.predict', ['--model_dir=/nonexistent/model'],
     'give audio files to score'),
])
def test_user_mistakes_are_one_line_with_status_2(module, args, message):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  result = subprocess.run([sys.executable, '-m', module, *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
  assert len(errors) == 1 and message in errors[0], result.stderr[-3000:]


def test_exit_on_user_error_passes_bugs_through():
  from vggish import cli  # pylint: disable=import-outside-toplevel

  def bug(argv):
    raise KeyError(argv)

  with pytest.raises(KeyError):
    cli.exit_on_user_error(bug)(['prog'])
  assert cli.exit_on_user_error(lambda argv: 0)(['prog']) == 0
