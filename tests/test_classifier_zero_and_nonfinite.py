"""The classifier on inputs that give zero examples, and on NaN/Inf inputs.

Zero examples (a record without embeddings, audio shorter than one example
under short_clip_policy='drop', an empty batch of a fine-tuned model) must not
crash, with oneDNN on or off; NaN/Inf never enters training, evaluation or a
written prediction.
"""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from classifier import data
from classifier import evaluate
from classifier import heads
from classifier import model_dir
from classifier import predict
from classifier import synthetic
from classifier import train
from classifier import training
from vggish import labels as labels_lib
from vggish.params import DEFAULT_PARAMS

SMALL_PARAMS = dict(example_window_seconds=0.16, num_mel_bins=16, embedding_size=32)


@pytest.fixture
def restore_tf32():
  before = tf.config.experimental.tensor_float_32_execution_enabled()
  yield
  tf.config.experimental.enable_tensor_float_32_execution(before)


def _write_records_bypassing_checks(path, ids, clips, label_lists):
  """float32 records as another tool might write them (vggish.records refuses NaN)."""
  from vggish import records  # pylint: disable=import-outside-toplevel
  examples = []
  for clip_id, clip, labels in zip(ids, clips, label_lists):
    seq = records.make_sequence_example(clip_id, np.nan_to_num(clip, nan=0.0, posinf=0.0,
                                                               neginf=0.0), labels)
    rows = seq.feature_lists.feature_list[records.AUDIO_EMBEDDING].feature
    for row, values in zip(rows, clip):
      del row.float_list.value[:]
      row.float_list.value.extend(values.tolist())
    examples.append(seq)
  records.write_records(path, examples)
  return str(path)


def test_load_records_refuses_nan_and_inf_embeddings_naming_the_clips(tmp_path):
  ids, clips, label_lists = synthetic.embedding_task(6, num_classes=2, seed=4)
  clips[1][0, 3] = np.nan
  clips[4][-1, 0] = -np.inf
  path = _write_records_bypassing_checks(tmp_path / 'bad.tfrecord', ids, clips, label_lists)
  label_map = labels_lib.LabelMap(((0, 'a', 'A'), (1, 'b', 'B')))
  with pytest.raises(ValueError, match=f'2 clip.*{ids[1]}, {ids[4]}'):
    data.load_records(path, label_map)


def test_nonfinite_clip_ids_and_describe_ids():
  clips = [np.zeros((2, 3), np.float32), np.zeros((0, 3), np.float32),
           np.array([[0, np.inf, 0]], np.float32), np.array([[1, 2, 3], [np.nan] * 3], np.float32)]
  label_map = labels_lib.LabelMap(((0, 'a', 'A'),))
  clip_set = data.from_clips(['a', 'empty', 'c', 'd'], clips, [[], [], [], []], label_map, (3,))
  assert data.nonfinite_clip_ids(clip_set) == ['c', 'd']
  assert data.describe_ids([f'x{i}' for i in range(7)]) == 'x0, x1, x2, x3, x4 and 2 more'


@pytest.fixture(scope='module')
def head_model_dir(tmp_path_factory):
  """A small head trained on float32 records in which two clips have no embeddings."""
  root = tmp_path_factory.mktemp('head_with_empty_clips')
  synthetic.write_label_map(root / 'labels.csv', ['a', 'b', 'c'])
  ids, clips, label_lists = synthetic.embedding_task(80, num_classes=3, seed=6)
  for i in (3, 50):
    clips[i] = clips[i][:0]
  synthetic.write_embedding_records(root / 'train.tfrecord', ids, clips, label_lists)
  out = root / 'model'
  train.train(label_map=str(root / 'labels.csv'), model_dir=str(out),
              train_records=str(root / 'train.tfrecord'), validation_split=0.3,
              head='mean_mlp', head_options={'hidden_units': 8},
              options=training.TrainOptions(epochs=2, batch_size=16, verbose=False))
  return {'root': root, 'model_dir': out, 'records': str(root / 'train.tfrecord')}


def test_evaluate_scores_clips_without_embeddings(head_model_dir, tmp_path):
  summary = evaluate.evaluate(head_model_dir['model_dir'], records=head_model_dir['records'],
                              output_dir=str(tmp_path))
  assert summary['num_clips'] == 80 and summary['clips_without_examples'] == 2
  assert np.isfinite(summary['mAP'])
  loaded = model_dir.load(head_model_dir['model_dir'])
  clip_set, _ = data.load_records(head_model_dir['records'], loaded.label_map)
  scores = training.Predictor(loaded.model, loaded.input_name)(clip_set.subset([3, 50]))
  assert scores.shape == (2, 3) and np.isfinite(scores).all()
  # An empty ClipSet gives an empty score matrix.
  empty = training.Predictor(loaded.model, loaded.input_name)(clip_set.subset([]))
  assert empty.shape == (0, 3)


def _write_wavs(directory):
  rng = np.random.default_rng(0)
  paths = {}
  for name, seconds in (('good', 1.5), ('short', 0.4)):
    paths[name] = directory / f'{name}.wav'
    sf.write(paths[name], 0.3 * rng.standard_normal(int(seconds * 16000)), 16000)
  nan = 0.3 * rng.standard_normal(24000)
  nan[[100, 2000, 2001]] = np.nan
  paths['nan'] = directory / 'nan.wav'
  sf.write(paths['nan'], nan, 16000, subtype='FLOAT')
  return paths


def test_predict_gives_per_file_messages_for_short_and_nan_audio(head_model_dir,
                                                                 recipe_checkpoint, tmp_path):
  paths = _write_wavs(tmp_path)
  rows, names, failures = predict.predict(
      head_model_dir['model_dir'], [str(paths[k]) for k in ('good', 'short', 'nan')],
      checkpoint=str(recipe_checkpoint), short_clip_policy='drop')
  assert [row['fname'] for row in rows] == ['good.wav']
  assert all(np.isfinite(rows[0][n]) for n in names)
  messages = dict(failures)
  assert set(messages) == {str(paths['short']), str(paths['nan'])}
  assert 'no example to score' in messages[str(paths['short'])]
  assert "short_clip_policy='drop'" in messages[str(paths['short'])]
  assert 'NaN' in messages[str(paths['nan'])] or 'non-finite' in messages[str(paths['nan'])]
  # No files at all: no rows, no failures.
  assert predict.predict(head_model_dir['model_dir'], [],
                         checkpoint=str(recipe_checkpoint))[::2] == ([], [])


def test_nan_scores_never_reach_the_csv(tmp_path):
  scores = np.array([[0.1, 0.9], [np.nan, 0.5], [0.3, np.inf]], np.float32)
  rows, failures = predict.score_rows(['a.wav', 'b.wav', 'c.wav'], scores, ['x', 'y'], 1)
  assert [r['fname'] for r in rows] == ['a.wav'] and rows[0]['top_labels'] == 'y'
  assert [clip for clip, _ in failures] == ['b.wav', 'c.wav']
  assert 'NaN or infinite scores' in failures[0][1]
  path = tmp_path / 'p.csv'
  bad = dict(rows[0], x=float('nan'))
  with pytest.raises(data.NonFiniteError, match='a.wav'):
    predict.write_csv(str(path), [bad], ['x', 'y'])
  assert not path.exists()


def test_finetune_model_on_empty_batches_and_reload(tmp_path):
  from vggish import model as vggish_model  # pylint: disable=import-outside-toplevel
  import dataclasses  # pylint: disable=import-outside-toplevel
  import keras  # pylint: disable=import-outside-toplevel
  params = dataclasses.replace(DEFAULT_PARAMS, **SMALL_PARAMS)
  backbone = vggish_model.VGGish(params=params)
  head = heads.build_head(2, 'mean_mlp', embedding_size=32, hidden_units=4)
  model = heads.build_finetune_model(backbone, head)
  examples = np.random.default_rng(1).normal(size=(2, 3, 16, 16)).astype(np.float32)
  no_examples = np.zeros((2, 3), np.float32)  # Every slot is padding: an empty backbone batch.
  out = np.asarray(model({'examples': examples, 'mask': no_examples}))
  assert out.shape == (2, 2) and np.isfinite(out).all()
  path = tmp_path / 'finetuned.keras'
  model.save(path)
  reloaded = keras.models.load_model(path, compile=False)
  np.testing.assert_allclose(
      np.asarray(reloaded({'examples': examples, 'mask': no_examples})), out, rtol=1e-6)
  zero_clips = np.asarray(reloaded({'examples': examples[:0], 'mask': no_examples[:0]}))
  assert zero_clips.shape == (0, 2)


def test_finetune_predict_evaluate_with_short_and_nan_audio(recipe_checkpoint, tmp_path,
                                                            restore_tf32):
  root = tmp_path / 'audio'
  train_csv, label_map = synthetic.tone_noise_task(root, 8, seed=21, csv_name='train.csv')
  eval_csv, _ = synthetic.tone_noise_task(root, 6, seed=22, csv_name='eval.csv')
  paths = _write_wavs(root)
  for csv_path in (train_csv, eval_csv):
    with open(csv_path, 'a', newline='', encoding='utf-8') as f:
      csv.writer(f).writerows([['short.wav', 'Low tone'], ['nan.wav', 'Noise burst']])
  out = tmp_path / 'finetuned'
  options = training.TrainOptions(epochs=1, batch_size=4, verbose=False)
  metrics = train.train(
      label_map=label_map, model_dir=str(out), finetune=True,
      checkpoint=str(recipe_checkpoint), train_csv=train_csv, eval_csv=eval_csv,
      head='mean_mlp', head_options={'hidden_units': 8, 'num_layers': 1}, freeze='all',
      short_clip_policy='drop', options=options, allow_tf32=True)
  # Fine-tuning ran with TF32 allowed, as asked; loading the model switches it off.
  assert tf.config.experimental.tensor_float_32_execution_enabled()
  config = json.loads((out / model_dir.CONFIG_FILE).read_text())
  assert config['finetune']['allow_tf32'] is True
  # The NaN file is skipped (train and eval CSV); the short one has no example.
  assert config['skipped_audio'] == 2
  with open(out / train.SKIPPED_AUDIO_CSV, newline='') as f:
    assert [row['path'] for row in csv.DictReader(f)] == [str(paths['nan'])] * 2
  assert metrics['num_validation_clips'] == 7  # The short clip is scored, as empty.
  assert np.isfinite(metrics['validation']['mAP'])

  model_dir.load(out)
  assert not tf.config.experimental.tensor_float_32_execution_enabled()
  # Evaluation keeps the short clip (scored as empty); an unreadable file is an error there.
  with open(eval_csv, encoding='utf-8') as f:
    lines = [line for line in f if not line.startswith('nan.wav')]
  eval_only = tmp_path / 'eval_only.csv'
  eval_only.write_text(''.join(lines), encoding='utf-8')
  summary = evaluate.evaluate(out, csv_path=str(eval_only), audio_dir=str(root),
                              output_dir=str(tmp_path / 'eval'))
  assert summary['num_clips'] == 7 and summary['clips_without_examples'] == 1
  rows, _, failures = predict.predict(
      out, [str(paths[k]) for k in ('good', 'short', 'nan')])
  assert [row['fname'] for row in rows] == ['good.wav']
  assert {path for path, _ in failures} == {str(paths['short']), str(paths['nan'])}
