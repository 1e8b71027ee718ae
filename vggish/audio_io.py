"""Reading audio files into float64 waveforms, the way the original VGGish scaled them.

Upstream read 16-bit WAV files as int16 and divided by 32768.0. libsndfile (through
soundfile) applies that same scale to 16-bit PCM, and the matching power of two to
8-, 24- and 32-bit PCM, so `read_audio` gives upstream's numbers for its files and
reads everything else libsndfile can: WAV, FLAC, OGG (Vorbis, Opus), MP3, AIFF, ...
Float files come back as stored: they are not normalised a second time (a common
bug of other ports).
"""

import logging
import os
import re

import numpy as np
import soundfile

from vggish import resample as vggish_resample
from vggish.params import DEFAULT_PARAMS

# File name extensions (lowercase, with the dot) of the containers libsndfile reads.
# A corpus walker uses them to pick files; `read_audio` itself goes by content.
AUDIO_EXTENSIONS = (
    '.wav', '.wave', '.flac', '.ogg', '.oga', '.opus', '.mp3', '.aif', '.aiff',
    '.aifc', '.au', '.snd', '.caf', '.w64', '.rf64',
)

# libsndfile notes in its log when a header declares more audio data than the file
# holds ("data : 32000 (should be 15978)"); it then reads what is there without an
# error, so a half-downloaded file would silently give a shorter clip. The sizes
# checked: the data chunk of WAV/RF64 ('data'), AIFF ('SSND') and AU ('Data Size'),
# and the whole-file size of W64 ('riff'; WAV's 'RIFF' is left out because some
# writers get it wrong on intact files).
_SHORT_DATA_CHUNK = re.compile(
    r'^\s*(?:data|SSND|Data Size|riff)\s*:\s*(\d+)\s*\(should be (\d+)\)', re.MULTILINE)
# Streaming writers that cannot seek back leave this size in the header.
_UNKNOWN_DATA_SIZE = 0xFFFFFFFF


class AudioReadError(ValueError):
  """An audio file is missing, empty, truncated, corrupt or in an unsupported format."""


def read_audio(path):
  """Reads an audio file as float64 samples in [-1, 1) with their sample rate.

  Integer PCM is scaled by 2**-(bits - 1) (16-bit: exactly 1/32768, as upstream);
  unsigned 8-bit is centred first. Float files are returned as stored.

  Args:
    path: str or os.PathLike, any file libsndfile reads.

  Returns:
    (data, sample_rate): data is float64 [samples] for a mono file or
    [samples, channels] otherwise; sample_rate is an int in Hz.

  Raises:
    AudioReadError: if the file is missing, empty, holds no samples, is truncated
      or corrupt, or is not in a format libsndfile reads.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise AudioReadError(f'{path}: no such file; check the path')
  if os.path.isdir(path):
    raise AudioReadError(f'{path}: is a directory, not an audio file')
  if os.path.getsize(path) == 0:
    raise AudioReadError(f'{path}: the file is empty (0 bytes); re-create or remove it')
  try:
    with soundfile.SoundFile(path) as sound:
      sample_rate = sound.samplerate
      declared_frames = sound.frames
      log = sound.extra_info
      file_format = sound.format
      data = sound.read(dtype='float64', always_2d=True)  # [samples, channels]
  except (soundfile.SoundFileError, RuntimeError) as e:
    raise AudioReadError(
        f'{path}: cannot be read as audio ({e}). libsndfile '
        f'{soundfile.__libsndfile_version__} reads {_supported_formats()}; convert '
        f'the file to one of them (e.g. `ffmpeg -i IN OUT.wav`) or check that it '
        f'is not corrupt') from e
  _check_not_truncated(path, log, file_format, declared_frames, data.shape[0])
  if data.shape[0] == 0:
    raise AudioReadError(
        f'{path}: holds no audio samples (a header without data); re-create or '
        f'remove it')
  if data.shape[1] == 1:
    data = data[:, 0]
  return data, int(sample_rate)


def _check_not_truncated(path, log, file_format, declared_frames, read_frames):
  """Raises AudioReadError when the file holds less audio than its header declares."""
  for declared, present in _SHORT_DATA_CHUNK.findall(log):
    declared, present = int(declared), int(present)
    if present < declared != _UNKNOWN_DATA_SIZE:
      raise AudioReadError(
          f'{path}: is truncated: its header declares {declared} bytes of audio '
          f'but only {present} are present (an interrupted copy or download?); '
          f're-create the file')
  if read_frames >= declared_frames:
    return
  if file_format == 'MP3':
    # Without a Xing/Info header an MP3's frame count is an estimate from its
    # bitrate, so a shortfall is no proof of damage.
    if read_frames < 0.9 * declared_frames:
      logging.warning('%s: decoded %d frames of an estimated %d; the MP3 may be '
                      'truncated', path, read_frames, declared_frames)
    return
  raise AudioReadError(
      f'{path}: is truncated: its header declares {declared_frames} frames but '
      f'only {read_frames} could be read; re-create the file')


def _supported_formats():
  return ', '.join(sorted(soundfile.available_formats()))


def to_mono(data):
  """Averages channels: [samples, channels] -> [samples]; mono input passes through.

  Args:
    data: float [samples] or [samples, channels].

  Returns:
    float64 [samples].

  Raises:
    ValueError: if data has more than two dimensions.
  """
  data = np.asarray(data, dtype=np.float64)
  if data.ndim > 2:
    raise ValueError(
        f'expected a waveform [samples] or [samples, channels], got shape {data.shape}')
  if data.ndim == 2:
    # Upstream averaged over axis 1: the channel axis of soundfile's [samples, channels].
    data = np.mean(data, axis=1)
  return data


def prepare_waveform(data, sample_rate, params=DEFAULT_PARAMS):
  """Makes a waveform mono (channel mean) at `params.sample_rate`, as upstream did.

  Args:
    data: float [samples] or [samples, channels].
    sample_rate: int, Hz, of `data`.
    params: `Params`; `params.sample_rate` is the target rate.

  Returns:
    float64 [samples'] mono at `params.sample_rate` (possibly empty).

  Raises:
    ValueError: if data has more than two dimensions or sample_rate is not positive.
  """
  if sample_rate <= 0:
    raise ValueError(f'sample_rate must be positive, got {sample_rate}')
  data = to_mono(data)
  if sample_rate == params.sample_rate:
    return data
  if data.size == 0:  # Nothing to resample; some resamplers reject empty input.
    return data
  logging.debug('resampling %d samples from %d Hz to %d Hz', data.size, sample_rate,
                params.sample_rate)
  return np.asarray(vggish_resample.resample(data, sample_rate, params.sample_rate),
                    dtype=np.float64)


def load_waveform(path, params=DEFAULT_PARAMS):
  """Reads an audio file as a mono float64 waveform at `params.sample_rate`.

  Args:
    path: str or os.PathLike.
    params: `Params`.

  Returns:
    float64 [samples].

  Raises:
    AudioReadError: see `read_audio`.
  """
  data, sample_rate = read_audio(path)
  return prepare_waveform(data, sample_rate, params)
