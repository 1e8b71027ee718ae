"""Tests of vggish.audio_io on files written with soundfile into tmp_path."""

import wave

import numpy as np
import pytest
import soundfile

from conftest import golden_audio_path
from vggish import audio_io
from vggish.params import DEFAULT_PARAMS


def _tone(num_samples, sample_rate, hz=440.0, channels=1, amplitude=0.5):
  """float64 [num_samples] or [num_samples, channels]; channel c is at hz * (c + 1)."""
  t = np.arange(num_samples)[:, np.newaxis] / sample_rate
  data = amplitude * np.sin(2 * np.pi * hz * (np.arange(channels) + 1) * t)
  return data[:, 0] if channels == 1 else data


def _on_grid(num_samples, bits, seed=0):
  """Random float64 samples that an integer PCM subtype of `bits` stores exactly."""
  full_scale = 2 ** (bits - 1)
  ints = np.random.RandomState(seed).randint(-full_scale, full_scale, num_samples)
  return ints / full_scale


def test_golden_16bit_wav_is_int16_over_32768():
  # Upstream read int16 and divided by 32768.0; the stdlib wave module gives the raw ints.
  path = golden_audio_path('stereo_48k_2.5s')
  with wave.open(str(path)) as f:
    channels, rate = f.getnchannels(), f.getframerate()
    ints = np.frombuffer(f.readframes(f.getnframes()), dtype='<i2').reshape(-1, channels)
  data, sample_rate = audio_io.read_audio(path)
  assert sample_rate == rate == 48000
  assert data.dtype == np.float64 and data.shape == (120000, 2)
  np.testing.assert_array_equal(data, ints / 32768.0)


def test_16bit_full_range_is_scaled_exactly(tmp_path):
  ints = np.array([-32768, -32767, -1, 0, 1, 12345, 32767], dtype=np.int16)
  path = tmp_path / 'ints.wav'
  soundfile.write(path, ints, 16000, subtype='PCM_16')
  data, _ = audio_io.read_audio(path)
  np.testing.assert_array_equal(data, ints / 32768.0)


@pytest.mark.parametrize('file_format, subtype, bits', [
    ('WAV', 'PCM_U8', 8), ('AIFF', 'PCM_S8', 8), ('WAV', 'PCM_16', 16),
    ('WAV', 'PCM_24', 24), ('WAV', 'PCM_32', 32), ('FLAC', 'PCM_16', 16),
    ('FLAC', 'PCM_24', 24), ('AIFF', 'PCM_16', 16), ('AU', 'PCM_16', 16),
    ('CAF', 'PCM_24', 24), ('W64', 'PCM_16', 16), ('WAV', 'FLOAT', 24),
    ('WAV', 'DOUBLE', 32)])
def test_lossless_subtypes_scale_by_power_of_two(tmp_path, file_format, subtype, bits):
  written = _on_grid(1000, bits)
  path = tmp_path / f'x_{subtype}.{file_format.lower()}'
  soundfile.write(path, written, 22050, format=file_format, subtype=subtype)
  data, sample_rate = audio_io.read_audio(path)
  assert sample_rate == 22050
  assert data.dtype == np.float64 and data.shape == (1000,)
  np.testing.assert_array_equal(data, written)


@pytest.mark.parametrize('subtype', ['FLOAT', 'DOUBLE'])
def test_float_files_are_not_renormalised(tmp_path, subtype):
  written = np.array([1.5, -2.0, 0.25, 0.001, 0.0])
  path = tmp_path / 'loud.wav'
  soundfile.write(path, written, 16000, subtype=subtype)
  data, _ = audio_io.read_audio(path)
  stored = written.astype(np.float32) if subtype == 'FLOAT' else written
  np.testing.assert_array_equal(data, stored.astype(np.float64))


@pytest.mark.parametrize('extension, file_format, subtype', [
    ('ogg', 'OGG', 'VORBIS'), ('opus', 'OGG', 'OPUS'), ('mp3', 'MP3', 'MPEG_LAYER_III')])
def test_lossy_formats(tmp_path, extension, file_format, subtype):
  sample_rate = 48000
  written = _tone(sample_rate, sample_rate, hz=1000.0)
  path = tmp_path / f'tone.{extension}'
  soundfile.write(path, written, sample_rate, format=file_format, subtype=subtype)
  data, read_rate = audio_io.read_audio(path)
  assert read_rate == sample_rate
  assert data.ndim == 1 and abs(data.shape[0] - sample_rate) < 0.05 * sample_rate
  # The codec keeps the tone: its spectrum peaks at 1 kHz with about the written level.
  spectrum = np.abs(np.fft.rfft(data[:sample_rate // 2]))
  assert np.argmax(spectrum) * 2 == pytest.approx(1000, abs=4)
  assert np.sqrt(np.mean(data ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


@pytest.mark.parametrize('channels', [2, 6])
def test_multichannel_shape_and_mono_mix(tmp_path, channels):
  written = np.round(_tone(4000, 16000, channels=channels) * 32768) / 32768
  path = tmp_path / f'{channels}ch.wav'
  soundfile.write(path, written, 16000, subtype='PCM_16')
  data, _ = audio_io.read_audio(path)
  assert data.shape == (4000, channels)
  np.testing.assert_array_equal(data, written)
  waveform = audio_io.load_waveform(path)
  assert waveform.shape == (4000,)
  np.testing.assert_array_equal(waveform, written.mean(axis=1))


@pytest.mark.parametrize('sample_rate', [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000])
def test_sample_rates_and_resampling(tmp_path, sample_rate):
  num_samples = sample_rate // 4
  written = _on_grid(num_samples, 16, seed=sample_rate)
  path = tmp_path / f'sr{sample_rate}.flac'
  soundfile.write(path, written, sample_rate, subtype='PCM_16')
  data, read_rate = audio_io.read_audio(path)
  assert read_rate == sample_rate
  np.testing.assert_array_equal(data, written)
  waveform = audio_io.load_waveform(path, DEFAULT_PARAMS)
  assert waveform.dtype == np.float64
  # resampy's output length: floor(n * sr_new / sr_orig).
  assert waveform.shape == (num_samples * 16000 // sample_rate,)
  if sample_rate == 16000:
    np.testing.assert_array_equal(waveform, written)


def test_resampled_tone_keeps_its_pitch(tmp_path):
  path = tmp_path / 'tone44k.wav'
  soundfile.write(path, _tone(44100, 44100, hz=1000.0), 44100, subtype='FLOAT')
  waveform = audio_io.load_waveform(path)
  assert waveform.shape == (16000,)
  spectrum = np.abs(np.fft.rfft(waveform))  # 1 Hz per bin.
  assert np.argmax(spectrum) == 1000


def _assert_read_error(path, *message_parts):
  with pytest.raises(audio_io.AudioReadError) as error:
    audio_io.read_audio(path)
  assert isinstance(error.value, ValueError)
  message = str(error.value)
  assert str(path) in message
  for part in message_parts:
    assert part in message
  return message


def test_missing_file(tmp_path):
  _assert_read_error(tmp_path / 'nope.wav', 'no such file')
  with pytest.raises(audio_io.AudioReadError, match='no such file'):
    audio_io.load_waveform(tmp_path / 'nope.wav')


def test_directory(tmp_path):
  _assert_read_error(tmp_path, 'directory')


def test_empty_file(tmp_path):
  path = tmp_path / 'empty.wav'
  path.write_bytes(b'')
  _assert_read_error(path, 'empty')


def test_header_without_samples(tmp_path):
  path = tmp_path / 'zero.wav'
  soundfile.write(path, np.zeros(0), 16000, subtype='PCM_16')
  assert path.stat().st_size > 0
  _assert_read_error(path, 'no audio samples')


def _cut(path, keep_bytes, name='cut'):
  """A copy of `path` holding its first `keep_bytes` bytes (header unchanged)."""
  cut = path.with_name(f'{name}{path.suffix}')
  cut.write_bytes(path.read_bytes()[:keep_bytes])
  return cut


def test_truncated_wav_is_decoded_as_far_as_it_goes(tmp_path):
  # A 5 s file cut to 1.5 s (an interrupted copy): libsndfile decodes what is
  # there, as upstream embedded it; the warning says what is missing.
  full = tmp_path / 'full.wav'
  tone = _tone(5 * 44100, 44100)
  soundfile.write(full, tone, 44100, subtype='PCM_16')
  cut = _cut(full, 44 + int(1.5 * 44100) * 2)
  decoded = audio_io.decode_audio(cut)
  assert decoded.warnings == (
      'truncated: header says 5.000 s, decoded 1.500 s (132300 of 441000 bytes of '
      'audio data present)',)
  np.testing.assert_array_equal(decoded.data, audio_io.read_audio(full)[0][:66150])
  assert decoded.duration == 1.5
  # The intact file reads without a warning: the check is no false alarm.
  assert audio_io.decode_audio(full).warnings == ()


def test_partial_last_frame_of_24_bit_stereo(tmp_path):
  full = tmp_path / 'full.wav'
  soundfile.write(full, np.stack([_tone(16000, 16000)] * 2, axis=1), 16000,
                  subtype='PCM_24')
  cut = _cut(full, full.stat().st_size - 2)  # 2 of the last frame's 6 bytes lost.
  decoded = audio_io.decode_audio(cut)
  assert decoded.data.shape == (15999, 2)
  # Three digits would read "1.000 s, decoded 1.000 s".
  assert decoded.warnings[0].startswith('truncated: header says 1.000000 s, decoded 0.999938 s')


def test_wav_with_early_eof(tmp_path):
  # Like scipy's test-44100Hz-le-1ch-4bytes-early-eof.wav: a 32-bit header
  # declaring 0.1 s over 236 frames.
  full = tmp_path / 'full.wav'
  soundfile.write(full, _tone(4410, 44100), 44100, subtype='PCM_32')
  cut = _cut(full, 44 + 236 * 4)
  decoded = audio_io.decode_audio(cut)
  assert decoded.data.shape == (236,)
  assert decoded.warnings[0].startswith('truncated: header says 0.100 s, decoded 0.005 s')


@pytest.mark.parametrize('extension, file_format', [('aiff', 'AIFF'), ('au', 'AU'),
                                                     ('w64', 'W64'), ('rf64', 'RF64')])
def test_truncated_other_formats_warn(tmp_path, extension, file_format):
  full = tmp_path / f'full.{extension}'
  soundfile.write(full, _tone(16000, 16000), 16000, format=file_format, subtype='PCM_16')
  decoded = audio_io.decode_audio(_cut(full, full.stat().st_size // 2))
  assert 7900 < decoded.data.shape[0] < 8000
  assert len(decoded.warnings) == 1 and decoded.warnings[0].startswith('truncated: ')
  assert audio_io.decode_audio(full).warnings == ()


@pytest.mark.parametrize('extension, file_format, subtype', [
    ('flac', 'FLAC', 'PCM_16'), ('ogg', 'OGG', 'VORBIS')])
def test_truncated_compressed_file_that_does_not_decode(tmp_path, extension, file_format,
                                                        subtype):
  # libsndfile refuses these as a whole: nothing decodes, so the file fails.
  full = tmp_path / f'full.{extension}'
  soundfile.write(full, _tone(5 * 16000, 16000), 16000, format=file_format, subtype=subtype)
  cut = _cut(full, int(full.stat().st_size * 0.4))
  _assert_read_error(cut, 'cannot be read as audio')


def test_wav_whose_header_promises_data_that_is_absent(tmp_path):
  full = tmp_path / 'full.wav'
  soundfile.write(full, _tone(16000, 16000), 16000, subtype='PCM_16')
  _assert_read_error(_cut(full, 44), 'no audio samples', 'truncated')


def test_truncated_mp3_is_read_with_a_warning(tmp_path, caplog):
  # An MP3's frame count may be an estimate, so a short decode only warns.
  full = tmp_path / 'full.mp3'
  soundfile.write(full, _tone(48000, 48000), 48000, format='MP3', subtype='MPEG_LAYER_III')
  path = _cut(full, full.stat().st_size // 2)
  with caplog.at_level('WARNING'):
    decoded = audio_io.decode_audio(path)
  assert 0 < decoded.data.shape[0] < 0.9 * 48000
  assert decoded.warnings[0].startswith('may be truncated: ')
  assert 'truncated' in caplog.text and str(path) in caplog.text


def _float_wav(path, data, sample_rate=44100):
  soundfile.write(path, data, sample_rate, subtype='FLOAT')
  return path


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_nonfinite_samples_fail_with_count_and_position(tmp_path, bad):
  data = _tone(3 * 44100, 44100)
  positions = [1000, 2000, 70000]
  data[positions] = bad
  path = _float_wav(tmp_path / 'bad.wav', data)
  message = _assert_read_error(path, '3 non-finite sample(s)', 'sample 1000 (0.023 s)',
                               '--nonfinite zero')
  assert 'channel' not in message
  with pytest.raises(audio_io.NonFiniteAudioError):
    audio_io.load_waveform(path)


def test_nonfinite_stereo_names_frame_and_channel(tmp_path):
  data = np.zeros((44100, 2))
  data[22050, 1] = np.nan
  path = _float_wav(tmp_path / 'stereo.wav', data)
  _assert_read_error(path, '1 non-finite sample(s) (NaN/Inf) of 88200',
                     'sample 22050 (0.500 s), channel 1')


def test_nonfinite_zero_replaces_them_with_a_warning(tmp_path):
  data = _tone(44100, 44100)
  data[[5, 6, 7]] = [np.nan, np.inf, -np.inf]
  decoded = audio_io.decode_audio(_float_wav(tmp_path / 'bad.wav', data), nonfinite='zero')
  expected = data.copy()
  expected[[5, 6, 7]] = 0.0
  np.testing.assert_array_equal(decoded.data, expected.astype(np.float32))
  assert decoded.warnings == (
      '3 non-finite sample(s) (NaN/Inf) of 44100, the first at sample 5 (0.000 s) '
      'replaced with zeros',)
  with pytest.raises(ValueError, match='nonfinite must be one of'):
    audio_io.decode_audio(tmp_path / 'bad.wav', nonfinite='ignore')


def test_prepare_waveform_refuses_nonfinite_arrays():
  # Arrays given to the frontend directly get the same check as files.
  waveform = np.zeros(16000)
  waveform[100] = np.nan
  with pytest.raises(audio_io.NonFiniteAudioError, match='sample 100'):
    audio_io.prepare_waveform(waveform, 16000)
  with pytest.raises(audio_io.NonFiniteAudioError):
    audio_io.prepare_waveform(np.stack([waveform] * 2, axis=1), 44100)


def test_broken_symlink(tmp_path):
  link = tmp_path / 'gone.wav'
  link.symlink_to(tmp_path / 'elsewhere.wav')
  _assert_read_error(link, 'broken symbolic link', 'elsewhere.wav')


def test_text_file_named_wav(tmp_path):
  path = tmp_path / 'notes.wav'
  path.write_text('these are not samples\n' * 20)
  message = _assert_read_error(path, 'cannot be read as audio')
  assert 'WAV' in message and 'FLAC' in message  # Says what would work.


def test_unsupported_format(tmp_path):
  # The start of an MP4/AAC file: a container libsndfile does not read.
  path = tmp_path / 'song.m4a'
  path.write_bytes(b'\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isomiso2' + bytes(2000))
  _assert_read_error(path, 'cannot be read as audio', 'ffmpeg')


def test_audio_extensions():
  extensions = audio_io.AUDIO_EXTENSIONS
  assert isinstance(extensions, tuple) and len(set(extensions)) == len(extensions)
  assert all(e.startswith('.') and e == e.lower() for e in extensions)
  assert {'.wav', '.flac', '.ogg', '.mp3', '.aiff'} <= set(extensions)
  # Every extension is one of libsndfile's containers.
  container = {'.wave': 'WAV', '.oga': 'OGG', '.opus': 'OGG', '.aif': 'AIFF', '.aifc': 'AIFF',
               '.snd': 'AU'}
  formats = soundfile.available_formats()
  for extension in extensions:
    assert container.get(extension, extension[1:].upper()) in formats, extension


def test_prepare_waveform():
  stereo = np.random.RandomState(7).uniform(-1, 1, (3200, 2))
  np.testing.assert_array_equal(audio_io.prepare_waveform(stereo, 16000), stereo.mean(axis=1))
  assert audio_io.prepare_waveform(np.zeros(0), 44100).shape == (0,)
  assert audio_io.prepare_waveform(np.zeros((0, 2)), 44100).shape == (0,)
  with pytest.raises(ValueError, match='sample_rate'):
    audio_io.prepare_waveform(np.zeros(10), -16000)
