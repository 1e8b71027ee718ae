"""The FAD of audio files (vggish.analysis.fad, tools.fad) on the recipe checkpoint and generated audio.

The parity test recomputes the reference's chain independently: scipy's WAV reader,
`samples / max(0.1, max(samples))`, VGGish's own input chain on each 1 s window, the Keras
model called file by file, numpy's mean and covariance, and the trace of the square root
from numpy's eigenvalues.
"""

import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from vggish import frontend
from vggish.analysis import fad as fad_lib
from vggish.analysis import fad_input
from vggish.analysis import fad_stats

wavfile = pytest.importorskip('scipy.io.wavfile', reason='the FAD needs scipy (fad extra)')

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def test_set(tmp_path_factory):
  root = tmp_path_factory.mktemp('fad_test_set')
  fad_input.write_reference_test_set(root)
  return root


@pytest.fixture(scope='module')
def embedder(recipe_model):
  from vggish import embedder as embedder_lib
  return embedder_lib.Embedder(recipe_model, batch_size=32)


class _CountingEmbedder:
  """An Embedder that counts the examples it embeds."""

  def __init__(self, embedder):
    self._embedder = embedder
    self.batch_size = embedder.batch_size
    self.example_shape = embedder.example_shape
    self.embedding_size = embedder.embedding_size
    self.examples = 0

  def __call__(self, examples):
    self.examples += examples.shape[0]
    return self._embedder(examples)


def _independent_embeddings(model, folder):
  """{path: fc2 embeddings} by the reference's recipe, without vggish.analysis."""
  result = {}
  for path in sorted(pathlib.Path(folder).glob('*.wav')):
    rate, samples = wavfile.read(path)
    assert rate == 16000 and samples.dtype == np.int16
    samples = samples / max(0.1, max(samples))
    windows = [samples[start:start + 16000]
               for start in range(0, len(samples) - 16000 + 1, 8000)]
    examples = np.concatenate([frontend.waveform_to_examples(w, 16000) for w in windows])
    result[str(path)] = np.asarray(model(examples.astype(np.float32), training=False))
  return result


def _independent_fad(embeddings_e, embeddings_b):
  moments = []
  for x in (embeddings_e, embeddings_b):
    x = np.asarray(x, np.float64)
    moments.append((np.mean(x, axis=0).astype(np.float32).astype(np.float64),
                    np.cov(x, rowvar=False).astype(np.float32).astype(np.float64)))
  (mu_e, sigma_e), (mu_b, sigma_b) = moments
  eigenvalues = np.linalg.eigvals(sigma_e @ sigma_b).astype(complex)
  diff = mu_e - mu_b
  return float(diff @ diff + np.trace(sigma_e) + np.trace(sigma_b)
               - 2 * np.sum(np.sqrt(eigenvalues)).real)


@pytest.fixture(scope='module')
def independent(recipe_model, test_set):
  return {name: _independent_embeddings(recipe_model, test_set / name)
          for name in ('background', 'test1', 'test2')}


@pytest.mark.parametrize('subset', ['test1', 'test2'])
def test_fad_equals_the_independent_computation(subset, test_set, embedder, independent):
  result = fad_lib.fad(test_set / 'background', test_set / subset, embedder=embedder,
                       per_file=True, show_progress=False)
  background = np.concatenate(list(independent['background'].values()))
  evaluated = np.concatenate(list(independent[subset].values()))
  assert result.background.stats.count == 110 and result.eval.stats.count == 55  # 11 per 6 s.
  assert (result.background.stats.num_files, result.eval.stats.num_files) == (10, 5)
  # Float32 statistics of (batch-independent) float32 embeddings; the tolerance covers the
  # float32 rounding of a covariance accumulated in another order, and sqrtm versus the
  # eigenvalues of a product of singular covariances (110 and 55 embeddings, 128 dims).
  expected = _independent_fad(evaluated, background)
  assert result.fad == pytest.approx(expected, rel=1e-6)
  assert result.fad > 1.0  # Two different sets of sines.
  for file_result in result.eval.files:
    own = independent[subset][file_result.path]
    assert file_result.embeddings == 11 and file_result.error is None
    assert file_result.fad == pytest.approx(_independent_fad(own, background), rel=1e-6)


def test_resample_mode_on_reference_input_gives_the_same_fad(test_set, embedder):
  reference = fad_lib.fad(test_set / 'background', test_set / 'test1', embedder=embedder,
                          show_progress=False)
  resampled = fad_lib.fad(test_set / 'background', test_set / 'test1', embedder=embedder,
                          mode=fad_lib.RESAMPLE, show_progress=False)
  assert resampled.fad == reference.fad
  assert resampled.eval.stats.mode == 'resample'


def test_resample_mode_reads_what_reference_mode_skips(tmp_path, test_set, embedder):
  for path in (test_set / 'test1').glob('*.wav'):
    samples = soundfile.read(path)[0]
    # 44.1 kHz stereo FLAC: reference mode cannot read it.
    resampled = np.interp(np.arange(0, len(samples), 16000 / 44100), np.arange(len(samples)),
                          samples)
    soundfile.write(tmp_path / (path.stem + '.flac'), np.stack([resampled, resampled], 1),
                    44100)
  with pytest.raises(fad_stats.FadError, match='none of the 5 file'):
    fad_lib.fad(test_set / 'background', tmp_path, embedder=embedder, show_progress=False)
  result = fad_lib.fad(test_set / 'background', tmp_path, embedder=embedder,
                       mode=fad_lib.RESAMPLE, show_progress=False)
  assert result.eval.stats.num_files == 5 and not result.eval.skipped
  assert np.isfinite(result.fad)


def test_arrays_and_stats_as_sets(independent):
  background = np.concatenate(list(independent['background'].values()))
  evaluated = np.concatenate(list(independent['test1'].values()))
  stats = fad_stats.compute_stats(background)
  result = fad_lib.fad(stats, evaluated)  # No model needed.
  assert result.fad == pytest.approx(_independent_fad(evaluated, background), rel=1e-6)
  assert result.summary()['background_embeddings'] == 110
  with pytest.raises(ValueError, match='give the eval set'):
    fad_lib.fad(stats, None)


def test_bad_files_are_skipped_with_their_reasons(tmp_path, test_set, embedder):
  evaluated = tmp_path / 'eval'
  shutil.copytree(test_set / 'test1', evaluated)
  soundfile.write(evaluated / 'cd_rate.wav', np.zeros(44100), 44100, subtype='PCM_16')
  soundfile.write(evaluated / 'short.wav', np.zeros(8000), 16000, subtype='PCM_16')
  (evaluated / 'corrupt.wav').write_bytes(b'RIFF....WAVEjunk')
  listing = tmp_path / 'eval.txt'
  listing.write_text('# the eval set\neval\n\nmissing.wav\n')
  clean = fad_lib.fad(test_set / 'background', test_set / 'test1', embedder=embedder,
                      show_progress=False)
  result = fad_lib.fad(test_set / 'background', listing, embedder=embedder,
                       per_file=True, show_progress=False)
  assert result.fad == clean.fad  # The skipped files count for nothing.
  reasons = {os.path.basename(f.path): f.error for f in result.eval.skipped}
  assert sorted(reasons) == ['cd_rate.wav', 'corrupt.wav', 'missing.wav', 'short.wav']
  assert '44100 Hz' in reasons['cd_rate.wav'] and '--resample' in reasons['cd_rate.wav']
  assert 'reference WAV reader' in reasons['corrupt.wav']
  assert 'no such file' in reasons['missing.wav']
  assert 'shorter than one 1 s window' in reasons['short.wav']
  summary = result.summary()
  assert {s['file'] for s in summary['skipped']} == {f.path for f in result.eval.skipped}
  out = tmp_path / 'per_file.csv'
  fad_lib.write_per_file(result.eval.files, out)
  with open(out, newline='') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 9 and list(rows[0]) == list(fad_lib.PER_FILE_FIELDS)
  by_name = {os.path.basename(r['file']): r for r in rows}
  assert by_name['short.wav']['fad'] == '' and 'shorter' in by_name['short.wav']['note']
  assert float(by_name['sine_100hz_noise_0.0001.wav']['fad']) > 0


def test_too_few_embeddings(tmp_path, test_set, embedder):
  soundfile.write(tmp_path / 'one_window.wav', np.random.default_rng(0).normal(0, 0.1, 20000),
                  16000, subtype='PCM_16')
  with pytest.raises(fad_stats.FadError, match='eval: 1 embedding.*at least 2'):
    fad_lib.fad(test_set / 'background', tmp_path, embedder=embedder, show_progress=False)


def test_list_inputs(tmp_path):
  for folder in ('a', 'b'):
    (tmp_path / folder).mkdir()
    soundfile.write(tmp_path / folder / 'x.wav', np.zeros(16000), 16000)
  listing = tmp_path / 'list.lst'
  listing.write_text(f'a/x.wav\n{tmp_path / "b"}\n# a comment\na\n')
  inputs = fad_lib.list_inputs([listing, str(tmp_path / 'a' / 'x.wav')])
  # x.wav in two folders: both (ids do not matter here); a/x.wav reached thrice: once.
  assert [pathlib.Path(i.path).resolve() for i in inputs] == [
      (tmp_path / 'a' / 'x.wav').resolve(), (tmp_path / 'b' / 'x.wav').resolve()]
  (tmp_path / 'empty.txt').write_text('# nothing\n')
  with pytest.raises(ValueError, match='list of audio files is empty'):
    fad_lib.list_inputs(tmp_path / 'empty.txt')
  with pytest.raises(ValueError, match='none of the 1 input'):
    fad_lib.list_inputs(tmp_path / 'nothing_here')
  (tmp_path / 'no_audio').mkdir()
  with pytest.raises(ValueError, match='no audio files in'):
    fad_lib.list_inputs(tmp_path / 'no_audio')
  with pytest.raises(ValueError, match='matches no file'):
    fad_lib.list_inputs(str(tmp_path / '*.flac'))
  (tmp_path / 'binary.dat').write_bytes(b'\xff\xfe\x00\x81')
  with pytest.raises(ValueError, match='neither audio nor a text list'):
    fad_lib.list_inputs(tmp_path / 'binary.dat')


def test_statistics_files_are_a_cache(tmp_path, test_set, embedder, recipe_checkpoint, caplog):
  caplog.set_level('INFO')
  background = tmp_path / 'background'
  shutil.copytree(test_set / 'background', background)
  stats = tmp_path / 'background.npz'
  counting = _CountingEmbedder(embedder)
  kwargs = dict(embedder=counting, checkpoint_path=recipe_checkpoint, show_progress=False)
  first = fad_lib.fad(background, test_set / 'test1', background_stats=stats, **kwargs)
  assert counting.examples == 110 + 55 and stats.exists()
  saved = fad_stats.load_stats(stats)
  assert saved.count == 110 and saved.mode == 'reference' and saved.num_files == 10
  assert saved.checkpoint_sha256 == fad_lib.checkpoint_sha256(recipe_checkpoint)

  # Same audio: the statistics are read, not recomputed.
  counting.examples = 0
  again = fad_lib.fad(background, test_set / 'test1', background_stats=stats, **kwargs)
  assert counting.examples == 55 and again.fad == first.fad and again.background.reused
  assert 'reusing statistics' in caplog.text
  # Only the statistics: the same FAD.
  alone = fad_lib.fad(None, test_set / 'test1', background_stats=stats, **kwargs)
  assert alone.fad == first.fad

  # A file changed: recomputed (and the file rewritten).
  shutil.copy(test_set / 'test2' / 'sine_100hz_noise_1e-05.wav', background / 'extra.wav')
  counting.examples = 0
  changed = fad_lib.fad(background, test_set / 'test1', background_stats=stats, **kwargs)
  assert counting.examples == 121 + 55 and changed.fad != first.fad
  assert 'other audio files' in caplog.text and fad_stats.load_stats(stats).count == 121

  # Another mode or checkpoint, without the audio to recompute: refused.
  with pytest.raises(ValueError, match='resample mode'):
    fad_lib.fad(None, test_set / 'test1', background_stats=stats, mode='resample', **kwargs)
  other = tmp_path / 'other.ckpt'
  other.write_bytes(b'not the same weights')
  with pytest.raises(ValueError, match='another checkpoint'):
    fad_lib.fad(None, test_set / 'test1', background_stats=stats,
                **dict(kwargs, checkpoint_path=other))
  with pytest.raises(FileNotFoundError, match='no such file'):
    fad_lib.fad(None, test_set / 'test1', background_stats=tmp_path / 'none.npz', **kwargs)
  # Statistics that record no audio (of embeddings, or the reference's) are only read.
  plain = tmp_path / 'plain.npz'
  fad_stats.save_stats(fad_stats.Stats(
      mu=saved.mu, sigma=saved.sigma, count=saved.count), plain)
  assert fad_lib.fad(None, test_set / 'test1', background_stats=plain, **kwargs).fad == first.fad
  with pytest.raises(ValueError, match='record no audio files'):
    fad_lib.fad(background, test_set / 'test1', background_stats=plain, **kwargs)


def test_statistics_that_cannot_be_written_do_not_lose_the_fad(tmp_path, test_set, embedder,
                                                              monkeypatch, caplog):
  def full_disk(stats, path):
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(fad_stats, 'save_stats', full_disk)
  result = fad_lib.fad(test_set / 'background', test_set / 'test1', embedder=embedder,
                       background_stats=tmp_path / 'bg.npz', show_progress=False)
  assert np.isfinite(result.fad) and result.background.stats_path is None
  assert 'No space left on device' in caplog.text and 'without caching' in caplog.text


def _run_fad(*args, env=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', **(env or {}))
  return subprocess.run([sys.executable, '-m', 'tools.fad'] + [str(a) for a in args],
                        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cli(tmp_path, test_set, recipe_checkpoint, embedder):
  stats = tmp_path / 'bg.npz'
  per_file = tmp_path / 'per_file.csv'
  result = _run_fad('--background', test_set / 'background', '--eval', test_set / 'test2',
                    '--background_stats', stats, '--checkpoint', recipe_checkpoint,
                    '--json', '--per_file', per_file)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout)
  expected = fad_lib.fad(test_set / 'background', test_set / 'test2', embedder=embedder,
                         show_progress=False)
  assert summary['fad'] == pytest.approx(expected.fad, rel=1e-6)
  assert (summary['background_embeddings'], summary['eval_embeddings']) == (110, 55)
  assert summary['skipped'] == [] and summary['mode'] == 'reference'
  assert 'files 10/10' in result.stderr  # Progress.
  with open(per_file, newline='') as f:
    assert len(list(csv.DictReader(f))) == 5

  # From the statistics file alone; the plain output is the number.
  result = _run_fad('--background_stats', stats, '--eval', test_set / 'test2',
                    '--checkpoint', recipe_checkpoint, '--noprogress')
  assert result.returncode == 0, result.stderr[-3000:]
  assert float(result.stdout) == summary['fad']


def test_cli_usage_errors(tmp_path, test_set):
  for args, message in [
      (['--eval', test_set], 'give --background'),
      (['--background', test_set], 'give --eval'),
      (['--background', test_set, '--eval', test_set, '--background_stats', 'x.json'],
       'statistics are written as .npz'),
      (['--background', test_set, '--eval', test_set, '--per_file', tmp_path / 'no' / 'a.csv'],
       'does not exist'),
      (['--background', tmp_path / 'missing', '--eval', test_set], 'none of the 1 input'),
      (['--background', test_set, '--eval', test_set, 'extra'], 'unexpected arguments'),
      (['--background', test_set, '--eval', test_set, '--batch_size', '0'], 'batch_size'),
  ]:
    result = _run_fad(*args)
    assert result.returncode == 2, (args, result.stderr[-2000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and message in errors[0], (args, result.stderr[-2000:])
    assert 'Traceback' not in result.stderr


def test_cli_without_scipy_names_the_extra(tmp_path, test_set):
  blocker = tmp_path / 'blocker'
  (blocker / 'scipy').mkdir(parents=True)
  (blocker / 'scipy' / '__init__.py').write_text("raise ImportError('scipy blocked by the test')\n")
  result = _run_fad('--background', test_set / 'background', '--eval', test_set / 'test1',
                    env={'PYTHONPATH': str(blocker)})
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'pip install -e ".[fad]"' in result.stderr and 'Traceback' not in result.stderr


def test_benchmark_measures_equal_statistics(tmp_path, recipe_model):
  from vggish.analysis import fad_benchmark
  paths = fad_benchmark.write_corpus(str(tmp_path), files=4, seconds=2.5)
  measurement = fad_benchmark.measure(paths, rounds=1, batch_size=8, model=recipe_model)
  assert (measurement.files, measurement.windows) == (4, 4 * 4)
  # The reference's way and embed_set embed the same windows into the same statistics
  # (bit for bit with oneDNN's kernels; Eigen's round batches of other sizes differently,
  # about 1e-6 here).
  assert measurement.max_mu_difference < 1e-5 and measurement.max_sigma_difference < 1e-5
  lines = measurement.lines()
  assert any('embed_set / reference' in line for line in lines)
  assert set(measurement.seconds) == {'reference', 'embed_set', 'frontend per window',
                                      'frontend shared'}
