"""Where corpus lists, label maps and outputs are read and written.

The corpus and label-map code (`vggish.corpus`) reads and writes through a
small object with the methods of `LocalFiles`, so that one implementation
serves both front doors: `tools.extract` uses `LOCAL` (the `os` module), and
`tools.extract_beam` passes `vggish.pipelines.filesystem.BeamFiles`, which
reaches whatever Apache Beam's `FileSystems` does (local, `gs://`, `s3://`).
"""

import os
from typing import Optional

from vggish import audio_io


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
