"""A small progress reporter for long jobs (downloads, corpus extraction).

It writes to stderr, never stdout, so a tool's results on stdout stay clean.
On a terminal it keeps one line up to date; otherwise (a log file, CI) it
writes a complete line every `log_interval` seconds, so logs stay readable.

  with progress.Progress(total=len(paths), unit='files') as bar:
    for path in paths:
      ...
      bar.update(1, examples=len(examples), audio_seconds=duration)
  # files 10/100  2.0 files/s  examples 95 (19.0/s)  61x real time  ETA 0:45

Besides the main count, `update` accepts named counters that are summed and
shown with their rate. The counter `audio_seconds` is shown as a real-time
factor (seconds of audio processed per second of wall time).
"""

import shutil
import sys
import time
from typing import Callable, Optional, TextIO

AUDIO_SECONDS = 'audio_seconds'
BYTE_UNITS = ('B', 'bytes')


def format_duration(seconds: float) -> str:
  """`H:MM:SS`, or `M:SS` under an hour."""
  seconds = max(0, int(round(seconds)))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  if hours:
    return f'{hours}:{minutes:02d}:{seconds:02d}'
  return f'{minutes}:{seconds:02d}'


def _format_megabytes(num_bytes: float) -> str:
  return f'{num_bytes / 1e6:.1f}'


def _format_number(value: float) -> str:
  # Counts are usually whole; `:g` would turn 1234567 into 1.23457e+06.
  if float(value).is_integer():
    return str(int(value))
  return f'{value:.1f}'


class Progress:
  """Counts work done and reports count, rate and ETA on stderr.

  Attributes:
    count: units done so far (including `initial`).
    counters: dict of the named counters given to `update`.
  """

  def __init__(self,
               total: Optional[float] = None,
               unit: str = 'files',
               desc: str = '',
               initial: float = 0,
               stream: Optional[TextIO] = None,
               log_interval: float = 10.0,
               refresh_interval: float = 0.1,
               enabled: bool = True,
               is_tty: Optional[bool] = None,
               clock: Callable[[], float] = time.monotonic):
    """Starts the clock.

    Args:
      total: the count at completion, or None when unknown (no ETA then).
      unit: what is counted: 'files', 'examples', ...; 'B' counts bytes and
        is shown in MB and MB/s.
      desc: a label at the start of every line (e.g. a file name).
      initial: units already done before this run (a resumed download); they
        count toward the total but not toward the rate.
      stream: where to write; defaults to `sys.stderr` at construction time.
      log_interval: seconds between lines when the stream is not a terminal.
      refresh_interval: seconds between redraws on a terminal.
      enabled: False makes every method a no-op (for `progress=False`).
      is_tty: force terminal (True) or log-line (False) mode; None asks the
        stream.
      clock: a monotonic clock in seconds (injectable for tests).
    """
    self.total = total
    self.unit = unit
    self.desc = desc
    self.count = initial
    self.counters = {}
    self._initial = initial
    self._stream = sys.stderr if stream is None else stream
    self._log_interval = log_interval
    self._refresh_interval = refresh_interval
    self._enabled = enabled
    if is_tty is None:
      isatty = getattr(self._stream, 'isatty', None)
      is_tty = bool(isatty and isatty())
    self._is_tty = is_tty
    self._clock = clock
    self._start = clock()
    self._last_write = self._start
    self._last_line_length = 0
    self._closed = False

  def __enter__(self) -> 'Progress':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  @property
  def elapsed(self) -> float:
    """Seconds since construction."""
    return self._clock() - self._start

  def update(self, n: float = 1, **counters: float) -> None:
    """Adds `n` to the count and each keyword to its named counter."""
    self.count += n
    for name, value in counters.items():
      self.counters[name] = self.counters.get(name, 0) + value
    if not self._enabled or self._closed:
      return
    now = self._clock()
    interval = self._refresh_interval if self._is_tty else self._log_interval
    if now - self._last_write >= interval:
      self._write(self.format_line())
      self._last_write = now

  def close(self) -> None:
    """Writes the final line (ends the terminal line). Idempotent."""
    if self._closed:
      return
    self._closed = True
    if self._enabled:
      self._write(self.format_line())
      if self._is_tty:
        self._stream.write('\n')
        self._stream.flush()

  def format_line(self) -> str:
    """The current status, e.g. `files 10/100  2.0 files/s  ETA 0:45`."""
    elapsed = self.elapsed
    rate = (self.count - self._initial) / elapsed if elapsed > 0 else 0.0
    is_bytes = self.unit in BYTE_UNITS
    if is_bytes:
      done = _format_megabytes(self.count)
      total = None if self.total is None else _format_megabytes(self.total)
      parts = [f'{done}/{total} MB' if total else f'{done} MB',
               f'{rate / 1e6:.2f} MB/s']
    else:
      done = _format_number(self.count)
      total = None if self.total is None else _format_number(self.total)
      parts = [f'{self.unit} {done}/{total}' if total
               else f'{self.unit} {done}',
               f'{rate:.1f} {self.unit}/s']
    if self.total:
      parts[0] += f' ({100.0 * self.count / self.total:.0f}%)'
    for name, value in self.counters.items():
      if name == AUDIO_SECONDS:
        if elapsed > 0:
          parts.append(f'{value / elapsed:.1f}x real time')
      else:
        per_second = value / elapsed if elapsed > 0 else 0.0
        parts.append(f'{name} {_format_number(value)} ({per_second:.1f}/s)')
    parts.append(f'elapsed {format_duration(elapsed)}')
    if self.total is not None and rate > 0 and self.count < self.total:
      parts.append(f'ETA {format_duration((self.total - self.count) / rate)}')
    line = '  '.join(parts)
    return f'{self.desc}: {line}' if self.desc else line

  def _write(self, line: str) -> None:
    if self._is_tty:
      # A line wider than the terminal would wrap, and '\r' would then redraw
      # only its last row.
      line = line[:shutil.get_terminal_size((120, 24)).columns - 1]
      # Pad with spaces so a shorter line fully covers the previous one.
      padding = max(0, self._last_line_length - len(line))
      self._stream.write('\r' + line + ' ' * padding)
      self._last_line_length = len(line)
    else:
      self._stream.write(line + '\n')
    self._stream.flush()
