"""The performance paths: frontend workers, the cached log-mel pieces, fast record
reading, and the opt-in fast modes (--frontend tf, --precision bfloat16)."""

import json
import os
import sys
import threading

import numpy as np
import pytest

from conftest import GOLDEN_NAMES, load_golden, write_tone
from vggish import extractor
from vggish import mel_features
from vggish import records
from vggish import workers
from vggish.params import DEFAULT_PARAMS


def _clips(directory, count=3, seconds=2.2):
  for i, rate in enumerate([44100, 16000, 48000][:count]):
    write_tone(directory / f'clip{i}.wav', seconds, rate, seed=i)
  return directory


def _by_id(output_dir):
  out = {}
  for name in sorted(os.listdir(output_dir)):
    if name.endswith('.tfrecord'):
      for raw in records.raw_records(os.path.join(output_dir, name)):
        out[records.record_id(raw)] = raw
  return out


def test_stft_is_bit_identical_to_the_plain_computation():
  rng = np.random.RandomState(0)
  for n in (400, 401, 16000, 44100):
    x = rng.standard_normal(n)
    frames = mel_features.frame(x, 400, 160)
    plain = np.abs(np.fft.rfft(frames * mel_features.periodic_hann(400), n=512, axis=-1))
    # Tolerance: none (the pre-padded buffer must not change a bit).
    np.testing.assert_array_equal(mel_features.stft_magnitude(x, 512, 160, 400), plain)
  matrix = mel_features.mel_matrix(DEFAULT_PARAMS)
  assert not matrix.flags.writeable
  np.testing.assert_array_equal(matrix, mel_features.spectrogram_to_mel_matrix(
      64, 257, 16000, DEFAULT_PARAMS.mel_min_hz, DEFAULT_PARAMS.mel_max_hz))


def test_raw_records_equal_tf_data(tmp_path):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  path = str(tmp_path / 'r.tfrecord')
  with tf.io.TFRecordWriter(path) as writer:
    for i in range(5):
      writer.write(f'record {i}'.encode() * (i + 1))
  assert list(records.raw_records(path)) == list(
      tf.data.TFRecordDataset(path).as_numpy_iterator())


def test_worker_kinds_and_priority():
  assert workers.resolve_kind('auto', 2) == 'thread'
  assert workers.resolve_kind('auto', workers.MAX_AUTO_THREADS + 1) == 'process'
  assert workers.resolve_kind('process', 1) == 'process'
  with pytest.raises(ValueError, match='worker kind'):
    workers.resolve_kind('fibers', 2)
  assert workers.default_num_workers() == workers.usable_cores() >= 1
  caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
  with workers.make_pool(1, 'thread') as pool:
    nice = pool.submit(
        lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
  if sys.platform.startswith('linux'):
    assert nice == workers.BACKGROUND_NICE
  # Only the worker thread is lowered, never the caller (the model's thread).
  assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller


@pytest.fixture(scope='module')
def embedder(recipe_model):
  return extractor.Embedder(recipe_model, batch_size=4)


def test_process_workers_write_the_bytes_of_thread_workers(embedder, tmp_path):
  audio = _clips(tmp_path / 'audio')
  for kind in ('thread', 'process'):
    result = extractor.extract([audio], tmp_path / kind, embedder=embedder,
                               num_workers=2, worker_kind=kind)
    assert result.all_ok and result.num_ok == 3
  assert _by_id(tmp_path / 'thread') == _by_id(tmp_path / 'process')


def test_tf_frontend_is_recorded_and_within_one_byte_of_numpy(
    embedder, recipe_pca_params_path, tmp_path):
  from conftest import golden_audio_path  # pylint: disable=import-outside-toplevel
  audio = tmp_path / 'golden'
  audio.mkdir()
  for name in GOLDEN_NAMES:
    source = golden_audio_path(name)
    if source.suffix == '.wav':
      (audio / source.name).write_bytes(source.read_bytes())
  outputs = {}
  for frontend in ('numpy', 'tf'):
    out = tmp_path / frontend
    result = extractor.extract([audio], out, embedder=embedder, postprocess=True,
                               pca_params_path=recipe_pca_params_path, frontend=frontend)
    assert result.num_ok >= 4
    outputs[frontend] = {k: np.asarray(records.parse_sequence_example(v, dequantize=False)['embeddings'])
                         for k, v in _by_id(out).items()}
  config = json.loads((tmp_path / 'tf' / 'extract_config.json').read_text())
  assert config['frontend'] == 'tf'
  assert 'frontend' not in (tmp_path / 'numpy' / 'extract_config.json').read_text()
  equal = total = 0
  for name, reference in outputs['numpy'].items():
    golden = load_golden(name)['postprocessed'] if name in GOLDEN_NAMES else None
    if golden is not None and golden.shape[0]:
      np.testing.assert_array_equal(reference, golden)  # numpy stays faithful.
    diff = np.abs(outputs['tf'][name].astype(int) - reference.astype(int))
    # Tolerance: +-1 byte (measured on these inputs: 99.8 % identical, max 1).
    assert diff.max() <= 1, name
    equal += np.sum(diff == 0)
    total += diff.size
  assert equal / total > 0.99
  with pytest.raises(ValueError, match='other settings|differ'):
    extractor.extract([audio], tmp_path / 'tf', embedder=embedder, postprocess=True,
                      pca_params_path=recipe_pca_params_path)
  with pytest.raises(ValueError, match="runs in worker threads"):
    extractor.extract([audio], tmp_path / 'x', embedder=embedder, frontend='tf',
                      worker_kind='process')
  with pytest.raises(ValueError, match='frontend must be'):
    extractor.extract([audio], tmp_path / 'x', embedder=embedder, frontend='torch')


def test_bfloat16_model_is_close_and_returns_float32(recipe_checkpoint):
  from vggish import model as vggish_model  # pylint: disable=import-outside-toplevel
  fast = vggish_model.VGGish(weights=str(recipe_checkpoint), trainable=False,
                             precision='bfloat16')
  examples = load_golden('chirp_noise_44k1_5s')['examples'].astype(np.float32)
  golden = load_golden('chirp_noise_44k1_5s')['embedding']
  got = np.asarray(fast(examples, training=False))
  assert got.dtype == np.float32
  cosine = np.sum(got * golden, 1) / np.linalg.norm(got, axis=1) / np.linalg.norm(golden, axis=1)
  # Tolerance: measured 0.99997 on generated audio (README "Performance").
  assert cosine.min() > 0.9995
  assert np.abs(got - golden).max() / np.abs(golden).max() < 0.05
  with pytest.raises(ValueError, match='precision must be'):
    vggish_model.VGGish(precision='float16')
  with pytest.raises(ValueError, match='precision must be'):
    extractor.extract(['x.wav'], '/nonexistent', embedder=object(), precision='int8')


def test_fidelity_report_of_the_tf_frontend(embedder, recipe_pca_params_path, tmp_path):
  from vggish import fidelity  # pylint: disable=import-outside-toplevel
  audio = _clips(tmp_path / 'audio', count=2)
  same = fidelity.compare([audio], recipe_pca_params_path, embedder, embedder)
  assert same.bytes_equal == 1.0 and same.max_embedding_rel == 0.0
  assert same.max_example_diff == 0.0 and same.num_examples == 4
  tf_mode = fidelity.compare([audio], recipe_pca_params_path, embedder, embedder, 'tf')
  assert 0 < tf_mode.max_example_diff < 1e-3
  assert tf_mode.bytes_within_one == 1.0 and tf_mode.min_cosine > 0.9999
  assert 'uint8 bytes identical' in tf_mode.report('x')
