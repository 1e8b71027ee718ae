"""Reading audio files into float64 waveforms, the way the original VGGish scaled them.

Upstream read 16-bit WAV files as int16 and divided by 32768.0. libsndfile (through
soundfile) applies that same scale to 16-bit PCM, and the matching power of two to
8-, 24- and 32-bit PCM, so `read_audio` gives upstream's numbers for its files and
reads everything else libsndfile can: WAV, FLAC, OGG (Vorbis, Opus), MP3, AIFF, ...
Float files come back as stored: they are not normalised a second time (a common
bug of other ports).
"""

import dataclasses
import logging
import os
import re
from typing import Tuple

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
# error, so a half-downloaded file would give a shorter clip with no word of it:
# `decode_audio` turns that note into a warning. The sizes
# checked: the data chunk of WAV/RF64 ('data'), AIFF ('SSND') and AU ('Data Size'),
# and the whole-file size of W64 ('riff'; WAV's 'RIFF' is left out because some
# writers get it wrong on intact files).
_SHORT_DATA_CHUNK = re.compile(
    r'^\s*(data|SSND|Data Size|riff)\s*:\s*(\d+)\s*\(should be (\d+)\)', re.MULTILINE)
# Streaming writers that cannot seek back leave this size in the header.
_UNKNOWN_DATA_SIZE = 0xFFFFFFFF
# RF64 keeps its data size in a 'ds64' chunk, which libsndfile logs without
# comparing it to the file (its frame count there is unreliable).
_DS64_DATA_SIZE = re.compile(r'^\s*Data size\s*:\s*(\d+)', re.MULTILINE)
# The bytes of one frame (all channels), in WAV-family logs.
_BLOCK_ALIGN = re.compile(r'^\s*Block Align\s*:\s*(\d+)', re.MULTILINE)


class AudioReadError(ValueError):
  """An audio file is missing, empty, corrupt, holds no audio or non-finite samples."""


class NonFiniteAudioError(AudioReadError):
  """A waveform holds NaN or infinite samples (see `check_finite`)."""


# What to do with NaN/Inf samples: refuse the audio (default), or replace them
# with zeros and report it as a warning.
NONFINITE_POLICIES = ('fail', 'zero')


@dataclasses.dataclass(frozen=True)
class DecodedAudio:
  """What `decode_audio` read from a file.

  Attributes:
    data: float64 [samples] (mono) or [samples, channels], finite.
    sample_rate: Hz.
    warnings: what is doubtful about the audio that was still decoded (a file
      shorter than its header says, replaced non-finite samples), one message
      each; empty for a clean file.
  """
  data: np.ndarray
  sample_rate: int
  warnings: Tuple[str, ...] = ()

  @property
  def duration(self) -> float:
    """Seconds of audio decoded."""
    return self.data.shape[0] / float(self.sample_rate)


def decode_audio(path, nonfinite='fail', name=None):
  """Reads an audio file as float64 samples in [-1, 1) with what is doubtful about it.

  Integer PCM is scaled by 2**-(bits - 1) (16-bit: exactly 1/32768, as upstream);
  unsigned 8-bit is centred first. Float files are returned as stored.

  A file that holds less audio than its header declares (an interrupted copy or
  download) is decoded as far as it goes, as upstream (libsndfile) did, with a
  `truncated: ...` warning. A file of which nothing decodes is an error.

  Args:
    path: str or os.PathLike, any file libsndfile reads.
    nonfinite: 'fail' (NaN/Inf samples raise `NonFiniteAudioError`) or 'zero'
      (they become 0.0, with a warning).
    name: how messages name the file (default `path`): the Beam pipeline reads
      a local copy of a remote file and reports the remote path.

  Returns:
    A `DecodedAudio`.

  Raises:
    AudioReadError: if the file is missing, empty, holds no samples, is corrupt,
      is not in a format libsndfile reads, or (nonfinite='fail') holds NaN/Inf.
  """
  check_nonfinite_policy(nonfinite)
  path = os.fspath(path)
  name = path if name is None else os.fspath(name)
  reason = why_not_a_file(path, name)
  if reason:
    raise AudioReadError(reason)
  try:
    size = os.path.getsize(path)
  except OSError as e:
    raise AudioReadError(f'{name}: cannot be read ({e.strerror})') from e
  if size == 0:
    raise AudioReadError(f'{name}: the file is empty (0 bytes); re-create or remove it')
  if not os.access(path, os.R_OK):
    raise AudioReadError(f'{name}: permission denied; make the file readable')
  try:
    with soundfile.SoundFile(path) as sound:
      sample_rate = sound.samplerate
      declared_frames = sound.frames
      log = sound.extra_info
      file_format = sound.format
      data = sound.read(dtype='float64', always_2d=True)  # [samples, channels]
  except (soundfile.SoundFileError, RuntimeError) as e:
    raise AudioReadError(
        f'{name}: cannot be read as audio ({str(e).replace(path, name)}). libsndfile '
        f'{soundfile.__libsndfile_version__} reads {_supported_formats()}; convert '
        f'the file to one of them (e.g. `ffmpeg -i IN OUT.wav`) or check that it '
        f'is not corrupt') from e
  truncation = _truncation(log, file_format, declared_frames, data.shape[0],
                           sample_rate)
  if data.shape[0] == 0:
    raise AudioReadError(
        f'{name}: holds no audio samples (a header without data'
        f'{"; " + truncation if truncation else ""}); re-create or remove it')
  warnings = []
  if truncation:
    logging.warning('%s: %s', name, truncation)
    warnings.append(truncation)
  data, replaced = check_finite(data, sample_rate, nonfinite, source=name)
  if replaced:
    warnings.append(replaced)
  if data.shape[1] == 1:
    data = data[:, 0]
  return DecodedAudio(data, int(sample_rate), tuple(warnings))


def why_not_a_file(path, name=None):
  """Why `path` cannot be opened as an audio file, or None when it is a file.

  One wording for every front door: a path named on a command line, listed in
  a CSV, or opened by the reader.

  Args:
    path: a local path.
    name: how the message names it (default `path`).
  """
  path = os.fspath(path)
  shown = path if name is None else os.fspath(name)
  if os.path.isfile(path):
    return None
  if os.path.isdir(path):
    return f'{shown}: is a directory, not an audio file'
  if os.path.exists(path):
    return f'{shown}: is not a regular file (a device, socket or pipe?)'
  if os.path.islink(path):
    return (f'{shown}: is a broken symbolic link (to {os.readlink(path)!r}, which '
            f'does not exist); fix or remove the link')
  return f'{shown}: no such file or directory; check the path'


def read_audio(path, nonfinite='fail'):
  """`decode_audio` without the warnings (they are logged): (data, sample_rate).

  Returns:
    (data, sample_rate): data is float64 [samples] for a mono file or
    [samples, channels] otherwise; sample_rate is an int in Hz.

  Raises:
    AudioReadError: see `decode_audio`.
  """
  decoded = decode_audio(path, nonfinite)
  return decoded.data, decoded.sample_rate


def _truncation(log, file_format, declared_frames, read_frames, sample_rate):
  """`truncated: header says ...` when less audio decoded than declared, else ''."""
  bytes_per_frame = _BLOCK_ALIGN.search(log)
  ds64 = _DS64_DATA_SIZE.search(log)
  if ds64 and bytes_per_frame:
    frame_bytes = int(bytes_per_frame.group(1))
    declared = int(ds64.group(1)) // frame_bytes
    if read_frames < declared:
      return f'truncated: {_said_and_decoded(declared, read_frames, sample_rate)}'
  for chunk, declared, present in _SHORT_DATA_CHUNK.findall(log):
    declared, present = int(declared), int(present)
    if present < declared != _UNKNOWN_DATA_SIZE:
      if chunk == 'riff':  # W64: the size of the whole file, not of its audio.
        return (f'truncated: decoded {read_frames / sample_rate:.3f} s; the header '
                f'declares a {declared}-byte file, {present} bytes are present')
      if bytes_per_frame:
        frame_bytes = int(bytes_per_frame.group(1))
      else:  # AIFF and AU logs give no block size: derive it from what was read.
        frame_bytes = present / read_frames if read_frames else 0
      if not frame_bytes:
        return (f'truncated: decoded nothing ({present} of {declared} bytes of '
                f'audio data present)')
      return (f'truncated: {_said_and_decoded(declared / frame_bytes, read_frames, sample_rate)} '
              f'({present} of {declared} bytes of audio data present)')
  if read_frames >= declared_frames:
    return ''
  if file_format == 'MP3':
    # Without a Xing/Info header an MP3's frame count is an estimate from its
    # bitrate, so a small shortfall is no proof of damage.
    if read_frames >= 0.9 * declared_frames:
      return ''
    return (f'may be truncated: decoded {read_frames / sample_rate:.3f} s of an '
            f'estimated {declared_frames / sample_rate:.3f} s')
  return f'truncated: {_said_and_decoded(declared_frames, read_frames, sample_rate)}'


def _said_and_decoded(declared_frames, read_frames, sample_rate):
  """'header says 5.000 s, decoded 1.500 s', with more digits where 3 hide the gap."""
  for digits in (3, 6):
    said = f'{declared_frames / sample_rate:.{digits}f}'
    decoded = f'{read_frames / sample_rate:.{digits}f}'
    if said != decoded:
      break
  return f'header says {said} s, decoded {decoded} s'


def check_finite(data, sample_rate, nonfinite='fail', source='the waveform'):
  """Refuses or zeroes NaN/Inf samples, which would poison every example.

  One NaN sample spreads through the resampler's filter (its output is all
  NaN) and the STFT into every example, whose embeddings then quantize to bytes
  of 0 or 255: garbage that looks like data. So it is stopped here, before any
  computation.

  Args:
    data: float [samples] or [samples, channels].
    sample_rate: Hz, for reporting the position in seconds.
    nonfinite: 'fail' or 'zero' (see `NONFINITE_POLICIES`).
    source: how to name the audio in messages (its path).

  Returns:
    (data, warning): `data` itself when all samples are finite (warning ''),
    else (nonfinite='zero') a copy with zeros in their place and a warning
    naming their count and first position.

  Raises:
    NonFiniteAudioError: nonfinite='fail' and some sample is NaN or infinite.
  """
  check_nonfinite_policy(nonfinite)
  data = np.asarray(data)
  finite = np.isfinite(data)
  if finite.all():
    return data, ''
  bad = ~finite
  count = int(bad.sum())
  frames = bad.any(axis=1) if bad.ndim == 2 else bad
  first = int(np.argmax(frames))
  where = f'sample {first} ({first / sample_rate:.3f} s)'
  if bad.ndim == 2 and bad.shape[1] > 1:
    where += f', channel {int(np.argmax(bad[first]))}'
  described = (f'{count} non-finite sample(s) (NaN/Inf) of {data.size}, the first '
               f'at {where}')
  if nonfinite == 'fail':
    raise NonFiniteAudioError(
        f'{source}: holds {described}; repair the audio, or replace them with '
        f'zeros (--nonfinite zero)')
  data = np.where(finite, data, 0.0)
  return data, f'{described} replaced with zeros'


def check_nonfinite_policy(nonfinite):
  """Raises ValueError unless `nonfinite` is one of `NONFINITE_POLICIES`."""
  if nonfinite not in NONFINITE_POLICIES:
    raise ValueError(
        f'nonfinite must be one of {", ".join(NONFINITE_POLICIES)}, got {nonfinite!r}')


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
    data: float [samples] or [samples, channels], finite.
    sample_rate: int, Hz, of `data`.
    params: `Params`; `params.sample_rate` is the target rate.

  Returns:
    float64 [samples'] mono at `params.sample_rate` (possibly empty).

  Raises:
    NonFiniteAudioError: some sample is NaN or infinite (see `check_finite`;
      `decode_audio(path, nonfinite='zero')` repairs a file's).
    ValueError: if data has more than two dimensions or sample_rate is not positive.
  """
  if sample_rate <= 0:
    raise ValueError(f'sample_rate must be positive, got {sample_rate}')
  data = np.asarray(data, dtype=np.float64)
  if data.ndim <= 2:  # More is refused by to_mono.
    check_finite(data, sample_rate)
  data = to_mono(data)
  if sample_rate == params.sample_rate:
    return data
  if data.size == 0:  # Nothing to resample; some resamplers reject empty input.
    return data
  logging.debug('resampling %d samples from %d Hz to %d Hz', data.size, sample_rate,
                params.sample_rate)
  return np.asarray(vggish_resample.resample(data, sample_rate, params.sample_rate),
                    dtype=np.float64)


def load_waveform(path, params=DEFAULT_PARAMS, nonfinite='fail'):
  """Reads an audio file as a mono float64 waveform at `params.sample_rate`.

  Args:
    path: str or os.PathLike.
    params: `Params`.
    nonfinite: what to do with NaN/Inf samples, see `decode_audio`.

  Returns:
    float64 [samples].

  Raises:
    AudioReadError: see `decode_audio`.
  """
  data, sample_rate = read_audio(path, nonfinite)
  return prepare_waveform(data, sample_rate, params)
