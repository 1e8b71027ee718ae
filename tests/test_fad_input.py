"""The reference FAD's audio conventions (vggish.analysis.fad_input) and its test-set generator."""

import numpy as np
import pytest
import soundfile

from vggish import audio_io
from vggish import frontend
from vggish.analysis import fad_input

pytest.importorskip('scipy.io.wavfile', reason='reference mode reads WAVs with scipy (fad extra)')


def _write(path, data, rate=16000, subtype='PCM_16'):
  soundfile.write(str(path), data, rate, subtype=subtype)
  return path


@pytest.mark.parametrize('n', [0, 15999, 16000, 23999, 24000, 31999, 32000, 96000, 100123])
def test_window_count_is_the_references_range(n):
  assert fad_input.num_windows(n) == len(range(0, n - 16000 + 1, 8000))


def test_normalization_divides_by_the_largest_signed_sample():
  samples = np.array([-30000, 100, 20000, -5], np.int16)
  got = fad_input.normalize_loudness(samples)
  assert got.dtype == np.float64
  # 20000, not 30000: the signed maximum, so the negative peak goes below -1.
  np.testing.assert_array_equal(got, np.array([-30000, 100, 20000, -5]) / 20000.0)
  # All samples <= 0.1: divided by 0.1 (silence stays silence).
  np.testing.assert_array_equal(fad_input.normalize_loudness(np.array([0, -3, -7], np.int16)),
                                np.array([0, -3, -7]) / 0.1)
  np.testing.assert_array_equal(fad_input.normalize_loudness(np.zeros(5, np.int16)), np.zeros(5))
  # Float samples keep their dtype, as numpy divides them; a quiet clip (< 0.1) is / 0.1.
  quiet = np.array([0.05, -0.01], np.float32)
  assert fad_input.normalize_loudness(quiet).dtype == np.float32
  np.testing.assert_allclose(fad_input.normalize_loudness(quiet), [0.5, -0.1], rtol=1e-6)


@pytest.mark.parametrize('seconds', [1.0, 1.4, 3.3])
def test_examples_equal_the_window_by_window_computation(seconds, monkeypatch):
  # Few windows per chunk, so that chunk boundaries are crossed too.
  monkeypatch.setattr(fad_input, '_WINDOWS_PER_CHUNK', 2)
  rng = np.random.default_rng(0)
  n = int(seconds * 16000)
  samples = fad_input.normalize_loudness(
      np.round(rng.standard_normal(n) * 5000).clip(-32768, 32767).astype(np.int16))
  got = fad_input.reference_examples(samples)
  starts = list(range(0, n - 16000 + 1, 8000))
  assert got.shape == (len(starts), 96, 64)
  for k, start in enumerate(starts):
    window = samples[start:start + 16000]
    # VGGish's own input chain on one 1 s window: 98 log-mel frames, one 96-frame example.
    expected = frontend.waveform_to_examples(window, 16000)
    assert expected.shape == (1, 96, 64)
    np.testing.assert_allclose(got[k], expected[0], rtol=0, atol=1e-12)


def test_short_clip_gives_no_examples():
  assert fad_input.reference_examples(np.ones(15999)).shape == (0, 96, 64)


def test_reference_reader_returns_int16_unscaled(tmp_path):
  data = np.array([0, 1, -1, 32767, -32768, 1234] * 3000, np.int16)
  path = _write(tmp_path / 'a.wav', data)
  got = fad_input.read_reference_wav(path)
  assert got.dtype == np.int16
  np.testing.assert_array_equal(got, data)
  # Resample mode on a file the reference accepts gives the same values (in float64).
  resampled = fad_input.read_resampled(path)
  assert resampled.dtype == np.float64
  np.testing.assert_array_equal(resampled, data.astype(np.float64))


def test_reference_reader_refuses_what_the_reference_cannot_read(tmp_path):
  tone = (np.sin(np.arange(48000) / 10) * 0.5).astype(np.float32)
  with pytest.raises(audio_io.AudioReadError, match='44100 Hz.*--resample'):
    fad_input.read_reference_wav(_write(tmp_path / 'cd.wav', tone, rate=44100))
  with pytest.raises(audio_io.AudioReadError, match='2 channels.*mono.*--resample'):
    fad_input.read_reference_wav(_write(tmp_path / 'st.wav', np.stack([tone, tone], 1)))
  flac = _write(tmp_path / 'a.flac', tone, subtype='PCM_16')
  with pytest.raises(audio_io.AudioReadError, match='cannot be read by the reference WAV reader'):
    fad_input.read_reference_wav(flac)
  broken = tmp_path / 'broken.wav'
  broken.write_bytes(b'RIFF\x00\x00')
  with pytest.raises(audio_io.AudioReadError, match='broken.wav'):
    fad_input.read_reference_wav(broken)
  with pytest.raises(audio_io.AudioReadError, match='no such file'):
    fad_input.read_reference_wav(tmp_path / 'missing.wav')
  bad = tone.copy()
  bad[100] = np.nan
  with pytest.raises(audio_io.NonFiniteAudioError):
    fad_input.read_reference_wav(_write(tmp_path / 'nan.wav', bad, subtype='FLOAT'))
  # What --resample reads instead: mono, 16 kHz, int16 units.
  resampled = fad_input.read_resampled(tmp_path / 'cd.wav')
  assert resampled.ndim == 1 and abs(resampled.shape[0] - 48000 * 16000 / 44100) < 1
  assert 0.4 * 32768 < np.abs(resampled).max() < 0.6 * 32768
  assert fad_input.read_resampled(flac).shape == (48000,)


def test_float_wav_is_read_as_the_reference_reads_it(tmp_path):
  data = (np.sin(np.arange(20000) / 7) * 0.25).astype(np.float32)
  got = fad_input.read_reference_wav(_write(tmp_path / 'f.wav', data, subtype='FLOAT'))
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, data)


def test_file_examples(tmp_path):
  rng = np.random.default_rng(1)
  data = (rng.standard_normal(40000) * 3000).astype(np.int16)
  path = _write(tmp_path / 'a.wav', data)
  examples, seconds = fad_input.file_examples(path)
  assert examples.dtype == np.float32 and examples.shape == (4, 96, 64)  # 0, .5, 1, 1.5 s
  assert seconds == 2.5
  expected = fad_input.reference_examples(data / data.max())
  np.testing.assert_array_equal(examples, expected.astype(np.float32))
  np.testing.assert_array_equal(fad_input.file_examples(path, 'resample')[0], examples)
  with pytest.raises(ValueError, match='mode must be one of'):
    fad_input.file_examples(path, 'fast')


def test_test_set_is_the_references():
  sets = fad_input.reference_test_set(seed=0)
  assert sorted(sets) == ['background', 'test1', 'test2']
  t = np.arange(96000) / 16000

  def frequency(samples):
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return np.argmax(spectrum) * 16000 / samples.shape[0]

  background = list(sets['background'].values())
  assert [frequency(s) for s in background] == list(range(100, 1001, 100))
  for samples in background:
    assert samples.dtype == np.int16 and samples.shape == (96000,)  # 6 s at 16 kHz.
    assert samples.max() >= 32766 and samples.min() <= -32766  # Full scale.
  for name, noise in (('test1', 1e-4), ('test2', 1e-5)):
    files = list(sets[name].values())
    assert [frequency(s) for s in files] == [100, 300, 500, 700, 900]
    for samples, f in zip(files, (100, 300, 500, 700, 900)):
      clean = np.round(np.sin(2 * np.pi * f * t) * 32767)
      residual = samples - clean
      # Gaussian noise of noise x peak, then rounded to int16: for 1e-4 (3.3 LSB) the
      # rounding barely changes its spread; for 1e-5 (0.33 LSB) it leaves +-1 steps.
      if name == 'test1':
        assert residual.std() == pytest.approx(noise * 32767, rel=0.05)
      else:
        assert 0.1 < residual.std() < 1.0 and set(np.unique(residual)) <= {-2, -1, 0, 1, 2}
  # Seeded: the same seed, the same files; another seed, other noise.
  again = fad_input.reference_test_set(seed=0)
  other = fad_input.reference_test_set(seed=1)
  first = next(iter(sets['test1']))
  np.testing.assert_array_equal(again['test1'][first], sets['test1'][first])
  assert not np.array_equal(other['test1'][first], sets['test1'][first])


def test_write_test_set(tmp_path):
  written = fad_input.write_reference_test_set(tmp_path / 'set')
  assert len(written) == 20
  sets = fad_input.reference_test_set()
  for path in written:
    subset = path.split('/')[-2]
    name = path.split('/')[-1][:-len('.wav')]
    np.testing.assert_array_equal(fad_input.read_reference_wav(path), sets[subset][name])


def test_test_set_cli(tmp_path):
  import pathlib
  import subprocess
  import sys
  root = pathlib.Path(__file__).resolve().parents[1]
  result = subprocess.run([sys.executable, '-m', 'tools.fad_test_set', str(tmp_path / 'set'),
                           '--seed', '3'], cwd=root, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert len(list((tmp_path / 'set').glob('*/*.wav'))) == 20
  expected = fad_input.reference_test_set(seed=3)['test1']['sine_300hz_noise_0.0001']
  got = fad_input.read_reference_wav(tmp_path / 'set' / 'test1' / 'sine_300hz_noise_0.0001.wav')
  np.testing.assert_array_equal(got, expected)
  result = subprocess.run([sys.executable, '-m', 'tools.fad_test_set'], cwd=root,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and result.stderr.startswith('error: give one DIR')


def test_windows_match_the_golden_examples_where_they_overlap():
  """Against upstream's own outputs (tests/golden): FAD window k is log-mel frames 50k..50k+95.

  Upstream's examples are frames 96j..96j+95 of the same log-mel, so window 0 is golden
  example 0, and windows 1 and 2 share frames 50..95 and 100..191 with golden examples 0 and 1.
  Tolerance: the golden frontend tolerance of tests/golden/README.md (1e-6).
  """
  from conftest import golden_audio_path, load_golden  # pylint: disable=import-outside-toplevel
  golden = load_golden('sine_1khz_16k_3s')['examples']
  waveform = np.load(golden_audio_path('sine_1khz_16k_3s'))  # float64 at 16 kHz.
  windows = fad_input.reference_examples(waveform)  # Unnormalized: upstream's scale.
  assert windows.shape == (5, 96, 64)  # Windows at 0, 0.5, ..., 2 s of a 3 s clip.
  np.testing.assert_allclose(windows[0], golden[0], rtol=0, atol=1e-6)
  np.testing.assert_allclose(windows[1, :46], golden[0, 50:], rtol=0, atol=1e-6)
  np.testing.assert_allclose(windows[2, :92], golden[1, 4:], rtol=0, atol=1e-6)
