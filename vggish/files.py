"""Where corpus lists, label maps and outputs are read and written.

The corpus and label-map code (`vggish.corpus`) reads and writes through a
small object with the methods of `LocalFiles`, so that one implementation
serves both front doors: `tools.extract` uses `LOCAL` (the `os` module), and
`tools.extract_beam` passes `vggish.pipelines.filesystem.BeamFiles`, which
reaches whatever Apache Beam's `FileSystems` does (local, `gs://`, `s3://`).
"""

import contextlib
import os
import secrets
from typing import BinaryIO, Callable, Optional

from vggish import audio_io


def check_output_file(path, what: str = 'the output') -> str:
  """Refuses an output path that cannot be written, before any work is done.

  Args:
    path: the file to be written.
    what: how the file is named in messages ('the table').

  Returns:
    The path (str).

  Raises:
    ValueError: `path` is a directory.
    FileNotFoundError, NotADirectoryError: its directory does not exist.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    raise ValueError(f'cannot write {what} {path!r}: it is a directory')
  directory = os.path.dirname(os.path.abspath(path))
  if os.path.exists(directory) and not os.path.isdir(directory):
    raise NotADirectoryError(
        f'cannot write {what} {path!r}: {directory!r} is not a directory')
  if not os.path.isdir(directory):
    raise FileNotFoundError(
        f'cannot write {what} {path!r}: directory {directory!r} does not '
        'exist (create it first)')
  return path


def _named_error(error: OSError, path: str, what: str) -> OSError:
  """`error` (same class: PermissionError, ...) with a message naming the file."""
  reason = error.strerror or str(error)
  where = f' ({error.filename})' if error.filename else ''
  message = f'cannot write {what} {path!r}: {reason}{where}'
  try:
    return type(error)(message)
  except TypeError:  # A subclass with another constructor.
    return OSError(message)


def write_atomically(path, write: Callable[[BinaryIO], None],
                     what: str = 'the output') -> None:
  """Calls `write(binary_file)` on a temporary file, then renames it to `path`.

  The temporary file lies beside `path` (same filesystem, so the rename is
  atomic) and is fsynced first: `path` is either the whole new file or
  untouched, even after a crash, a full disk or an exception in `write`.
  The file gets the umask's permissions, like `open()`.

  Raises:
    OSError: of the same class as the cause (PermissionError, ...), with a
      message naming the file (`what` and `path`).
  """
  path = os.fspath(path)
  directory, name = os.path.split(os.path.abspath(path))
  tmp = os.path.join(directory, f'.{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp')
  try:
    # O_EXCL: a fresh file of our own; mode 0o666 less the umask, like open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  except OSError as e:
    raise _named_error(e, path, what) from e
  try:
    with open(fd, 'wb') as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    if isinstance(e, OSError):
      raise _named_error(e, path, what) from e
    raise


def append_durably(path: str, data: bytes) -> None:
  """Appends `data` to a local file in one `O_APPEND` write loop, then fsyncs.

  A crash leaves at most a torn last line, which the readers of appended
  CSVs (the extraction manifest, the example store's index) drop.
  """
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    view = memoryview(data)
    while view:
      view = view[os.write(fd, view):]
    os.fsync(fd)
  finally:
    os.close(fd)


def has_scheme(path: str) -> bool:
  """`gs://bucket/a.wav`, `s3://...`: a path that only a filesystem library opens."""
  return '://' in path


def manifest_path(path: str) -> str:
  """The manifest's `path` column: absolute when local, as given when remote."""
  return path if has_scheme(path) else os.path.abspath(path)


class LocalFiles:
  """The local filesystem."""

  def join(self, base: str, *parts: str) -> str:
    return os.path.join(base, *parts)

  def dirname(self, path: str) -> str:
    return os.path.dirname(path)

  def exists(self, path: str) -> bool:
    return os.path.exists(path)

  def isfile(self, path: str) -> bool:
    return os.path.isfile(path)

  def isdir(self, path: str) -> bool:
    return os.path.isdir(path)

  def read_text(self, path: str) -> str:
    with open(path, newline='', encoding='utf-8') as f:
      return f.read()

  def write_text(self, path: str, text: str) -> None:
    """Writes atomically: a temporary file renamed over `path`."""
    tmp = path + '.tmp'
    with open(tmp, 'w', newline='', encoding='utf-8') as f:
      f.write(text)
    os.replace(tmp, path)

  def why_not_a_file(self, path: str) -> Optional[str]:
    """Why `path` cannot be read as an audio file, or None (see `vggish.audio_io`)."""
    return audio_io.why_not_a_file(path)


LOCAL = LocalFiles()
