"""The extraction manifest and the resume state of an output directory.

An output directory of `tools.extract` holds:

- `embeddings-NNNNN.tfrecord`: complete shards. A shard is written as
  `embeddings-NNNNN.tfrecord.tmp` and renamed when it is complete, so a
  complete-looking name is always a complete file. A new run never reuses a
  shard number; leftover `.tmp` files of a killed run are deleted at start.
- `manifest.csv`: one row per input, columns

  | column | meaning |
  |---|---|
  | `id` | the record's `video_id` |
  | `path` | the input file (absolute) |
  | `status` | `ok` (its record is in `shard`) or `failed` |
  | `examples` | number of embeddings (0 when failed) |
  | `duration` | clip length in seconds, before any short-clip padding |
  | `shard` | the shard file holding the record (empty when failed) |
  | `error` | why it failed (empty when ok) |
  | `warning` | what is doubtful about an `ok` input (e.g. `truncated: header says 5.000 s, decoded 1.500 s`; several joined by `; `), else empty |

- `extract_config.json`: the settings that shape the records (embedding
  variant, hop, short-clip policy), so a resumed run cannot mix variants.

The manifest is append-only while a run works: a `failed` row is appended as
soon as an input fails, and the `ok` rows of a shard are appended (in one write,
then fsync) right after the shard is renamed. So an `ok` row always points at a
complete shard. When an id has several rows (it failed, then a later run
succeeded), the last row wins; each run starts and ends by rewriting the file
with one row per id (atomically).

A kill can still strike between a shard's rename and its rows' append (or cut
that append short). `reconcile` repairs this at the next start: the shards that
no row points to, and the highest-numbered shard with `ok` rows, are read back
and any id they hold without a row is recorded `ok`. Rows that point at a shard
that is gone (deleted by hand) are not trusted: those inputs are extracted
again.

`.extract.lock` (empty) is held with `flock` by the running extraction, so two
runs cannot write into one directory at once.
"""

import csv
import dataclasses
import errno
import fcntl
import io
import json
import logging
import os
import re
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from vggish import files as files_lib

MANIFEST_NAME = 'manifest.csv'
CONFIG_NAME = 'extract_config.json'
FIELDS = ('id', 'path', 'status', 'examples', 'duration', 'shard', 'error', 'warning')
# Manifests written before the `warning` column are read as well.
_OLD_FIELDS = FIELDS[:-1]
OK = 'ok'
FAILED = 'failed'

SHARD_PREFIX = 'embeddings-'
SHARD_SUFFIX = '.tfrecord'
TEMP_SUFFIX = '.tmp'
LOCK_NAME = '.extract.lock'
_SHARD_RE = re.compile(
    re.escape(SHARD_PREFIX) + r'(\d{5,})' + re.escape(SHARD_SUFFIX) + '$')
_TEMP_RE = re.compile(
    re.escape(SHARD_PREFIX) + r'\d{5,}' + re.escape(SHARD_SUFFIX + TEMP_SUFFIX) + '$')


class OutputWriteError(OSError):
  """The output directory cannot be written (disk full, permissions, ...).

  Nothing completed is lost when this is raised: shards are renamed into place
  and recorded only when whole, so rerunning the same command resumes.

  Attributes:
    path: the file or directory that could not be written.
    reason: the system's words ('No space left on device').
    no_space: the filesystem (or a quota) is full.
  """

  def __init__(self, path: str, reason: str, no_space: bool = False):
    self.path = path
    self.reason = reason
    self.no_space = no_space
    if no_space:
      remedy = ('free some space (or use another --output directory) and rerun '
                'the same command')
    else:
      remedy = ('check that the output directory is writable and rerun the same '
                'command')
    super().__init__(
        f'cannot write {path}: {reason}; {remedy}: it resumes, keeping every '
        f'input already extracted')

  @classmethod
  def from_os_error(cls, error: OSError, path: str) -> 'OutputWriteError':
    """The error for a failed write of `path` (or the file `error` names)."""
    return cls(error.filename or path, error.strerror or str(error),
               error.errno in (errno.ENOSPC, errno.EDQUOT))


def shard_name(index: int) -> str:
  """`embeddings-00042.tfrecord` for index 42."""
  return f'{SHARD_PREFIX}{index:05d}{SHARD_SUFFIX}'


def list_shards(output_dir: str) -> List[str]:
  """Names of the complete shards in `output_dir`, in index order."""
  return complete_shards(os.listdir(output_dir) if os.path.isdir(output_dir) else ())


def _shard_number(name: str) -> int:
  match = _SHARD_RE.match(name)
  return int(match.group(1)) if match else -1


def next_index(names: Iterable[str]) -> int:
  """One past the highest shard number among file names (temporary ones included)."""
  highest = -1
  for name in names:
    match = re.match(re.escape(SHARD_PREFIX) + r'(\d{5,})', name)
    if match:
      highest = max(highest, int(match.group(1)))
  return highest + 1


def complete_shards(names: Iterable[str]) -> List[str]:
  """The complete shard names among file names, in index order."""
  return sorted((name for name in names if _SHARD_RE.match(name)), key=_shard_number)


def next_shard_index(output_dir: str) -> int:
  """One past the highest shard number present (temporary files included)."""
  return next_index(os.listdir(output_dir) if os.path.isdir(output_dir) else ())


def remove_temp_shards(output_dir: str) -> List[str]:
  """Deletes the `.tmp` shards an interrupted run left; returns their names."""
  removed = []
  if os.path.isdir(output_dir):
    for name in sorted(os.listdir(output_dir)):
      if _TEMP_RE.match(name):
        os.remove(os.path.join(output_dir, name))
        removed.append(name)
  if removed:
    logging.info('removed %d incomplete shard(s) of an interrupted run: %s',
                 len(removed), ', '.join(removed))
  return removed


@dataclasses.dataclass(frozen=True)
class Row:
  """One manifest row (see the module docstring for the columns)."""
  id: str
  path: str
  status: str
  examples: int = 0
  duration: float = 0.0
  shard: str = ''
  error: str = ''
  warning: str = ''

  def as_fields(self) -> Tuple[str, ...]:
    # One line per row whatever the messages hold, so `tail`/`grep` work too.
    return (self.id, self.path, self.status, str(self.examples),
            f'{self.duration:.6f}', self.shard, ' '.join(self.error.split()),
            ' '.join(self.warning.split()))

  @classmethod
  def from_fields(cls, fields: Sequence[str]) -> 'Row':
    if len(fields) not in (len(FIELDS), len(_OLD_FIELDS)) or fields[2] not in (OK, FAILED):
      raise ValueError(f'not a manifest row: {fields}')
    return cls(id=fields[0], path=fields[1], status=fields[2],
               examples=int(fields[3]), duration=float(fields[4]),
               shard=fields[5], error=fields[6],
               warning=fields[7] if len(fields) == len(FIELDS) else '')


def format_rows(rows: Iterable[Row], header: bool = False) -> bytes:
  """Rows as CSV bytes (UTF-8, one line each), with the header line if asked."""
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  if header:
    writer.writerow(FIELDS)
  for row in rows:
    writer.writerow(row.as_fields())
  return buffer.getvalue().encode('utf-8')


def fsync_dir(path: str) -> None:
  """Makes a rename in `path` durable (best effort where unsupported)."""
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:  # Some platforms cannot open directories; the rename stands.
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def read_rows(path: str) -> List[Row]:
  """All rows of a manifest file in order, skipping a torn last line.

  A kill during an append can leave the last line cut short (fewer fields, or
  an unterminated one); such a line is dropped, not an error.
  """
  if not os.path.exists(path):
    return []
  with open(path, newline='', encoding='utf-8') as f:
    return parse_rows(f.read(), path)


def parse_rows(text: str, name: str = MANIFEST_NAME) -> List[Row]:
  """The rows of a manifest's text (see `read_rows`); `name` is for log messages."""
  lines = text.split('\n')
  if lines and lines[-1] == '':
    lines.pop()
  elif lines:
    # Every write ends its rows with a newline: an unterminated line is torn.
    logging.warning('%s: skipping an incomplete last line: %r', name, lines.pop())
  rows = []
  for number, fields in enumerate(csv.reader(lines)):
    if number == 0 and tuple(fields) in (FIELDS, _OLD_FIELDS):
      continue
    try:
      rows.append(Row.from_fields(fields))
    except ValueError:
      logging.warning('%s: skipping an incomplete line: %r', name, ','.join(fields))
  return rows


def latest_rows(rows: Iterable[Row]) -> Dict[str, Row]:
  """id -> its last row (a later run's row wins)."""
  latest: Dict[str, Row] = {}
  for row in rows:
    latest[row.id] = row
  return latest


def last_ok_shard(rows: Iterable[Row]) -> Optional[str]:
  """The highest-numbered shard with ok rows.

  Shards are numbered and their rows appended in time order, so it is the only
  one whose rows a kill may have cut short.
  """
  return max((row.shard for row in rows if row.status == OK),
             key=_shard_number, default=None)


def done_ids(rows: Mapping[str, Row], present_shards: Iterable[str],
             name: str = MANIFEST_NAME) -> set:
  """Ids recorded ok whose shard is present (others must be extracted again)."""
  present = set(present_shards)
  done = set()
  missing = set()
  for row in rows.values():
    if row.status != OK:
      continue
    if row.shard in present:
      done.add(row.id)
    else:
      missing.add(row.shard)
  if missing:
    logging.warning('%s: %d shard(s) named in the manifest are gone (%s); their '
                    'inputs will be extracted again', name, len(missing),
                    ', '.join(sorted(missing)))
  return done


def recover_rows(rows: Mapping[str, Row], last_ok: Optional[str],
                 present_shards: Sequence[str],
                 read_shard: Callable[[str], Iterable[Tuple[str, int, float]]],
                 paths: Optional[Mapping[str, str]] = None) -> List[Row]:
  """The ok rows of records in complete shards that the manifest lacks.

  A kill can strike between a shard's rename and its rows' append: the shards
  no row points to, and `last_ok` (whose rows may be cut short), are read back.

  Args:
    rows: id -> latest row.
    last_ok: `last_ok_shard` of all rows.
    present_shards: the complete shard names present.
    read_shard: shard name -> iterable of (video_id, num_examples, duration) of
      its records.
    paths: id -> input path, to fill the `path` column of recovered rows.

  Returns:
    The rows to add.
  """
  referenced = {row.shard for row in rows.values() if row.status == OK}
  added = []
  for name in present_shards:
    if name in referenced and name != last_ok:
      continue
    for video_id, examples, duration in read_shard(name):
      row = rows.get(video_id)
      if row is not None and row.status == OK and row.shard == name:
        continue
      added.append(Row(id=video_id, path=(paths or {}).get(video_id, ''),
                       status=OK, examples=int(examples), duration=float(duration),
                       shard=name))
  return added


class Manifest:
  """The manifest of one output directory: latest row per id, append-only file.

  Usage:
    manifest = Manifest(output_dir)   # loads and compacts an existing file
    manifest.append([Row(...), ...])  # durable when it returns
    manifest.compact()                # at the end of a run
  """

  def __init__(self, output_dir: str):
    self.output_dir = output_dir
    self.path = os.path.join(output_dir, MANIFEST_NAME)
    all_rows = read_rows(self.path)
    self.rows: Dict[str, Row] = latest_rows(all_rows)
    self.last_ok_shard = last_ok_shard(all_rows)
    self.compact()

  def append(self, rows: Sequence[Row]) -> None:
    """Appends rows in a single write and fsyncs; they win over older rows."""
    if not rows:
      return
    files_lib.append_durably(self.path, format_rows(rows))
    for row in rows:
      self.rows[row.id] = row

  def compact(self) -> None:
    """Rewrites the file with one row per id (temp file + rename)."""
    tmp = self.path + TEMP_SUFFIX
    try:
      with open(tmp, 'wb') as f:
        f.write(format_rows(self.rows.values(), header=True))
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, self.path)
    except OSError:
      # E.g. a full disk: the append-only file stays as it was, and valid.
      try:
        os.remove(tmp)
      except OSError:
        pass
      raise
    fsync_dir(self.output_dir)

  def done_ids(self) -> set:
    """Ids recorded ok whose shard exists (others must be extracted again)."""
    return done_ids(self.rows, list_shards(self.output_dir), self.path)

  def reconcile(self, read_shard: Callable[[str], Iterable[Tuple[str, int, float]]],
                paths: Optional[Mapping[str, str]] = None) -> List[Row]:
    """Records as ok the records of complete shards that the manifest lacks.

    Args:
      read_shard: path -> iterable of (video_id, num_examples, duration) of
        the records in that shard.
      paths: id -> input path, to fill the `path` column of recovered rows.

    Returns:
      The rows added.
    """
    added = recover_rows(
        self.rows, self.last_ok_shard, list_shards(self.output_dir),
        lambda name: read_shard(os.path.join(self.output_dir, name)), paths)
    if added:
      logging.info('recovered %d manifest row(s) from shards of an interrupted run',
                   len(added))
      self.append(added)
      self.compact()
    return added

  def counts(self) -> Dict[str, int]:
    """{'ok': n, 'failed': m} over all rows."""
    result = {OK: 0, FAILED: 0}
    for row in self.rows.values():
      result[row.status] += 1
    return result


def compare_config(previous: Mapping[str, object], config: Mapping[str, object],
                   output_dir: str) -> None:
  """Raises ValueError when `config` differs from a previous run's.

  Args:
    previous: the settings stored by the previous run.
    config: this run's settings.
    output_dir: named in the message.
  """
  config = normalize_config(config)
  # A setting left at its default is not stored (see
  # `vggish.pipelines.steps.record_settings`), so a key on one side only is
  # a change too.
  changed = {k: (previous.get(k), config.get(k)) for k in set(previous) | set(config)
             if previous.get(k) != config.get(k)}
  if changed:
    def show(value):
      return 'the default' if value is None else repr(value)
    details = ', '.join(f'{k}: {show(old)} before, {show(new)} now'
                        for k, (old, new) in sorted(changed.items()))
    raise ValueError(
        f'{output_dir} holds embeddings extracted with other settings ({details}); '
        f'rerun with the same settings to resume, or use a new --output directory')


def normalize_config(config: Mapping[str, object]) -> dict:
  """JSON types (tuples become lists ...), as the stored file reads back."""
  return json.loads(json.dumps(dict(config)))


def format_config(config: Mapping[str, object]) -> str:
  """The text of `extract_config.json`."""
  return json.dumps(normalize_config(config), indent=2, sort_keys=True) + '\n'


def check_config(output_dir: str, config: Mapping[str, object]) -> None:
  """Stores the record-shaping settings, or checks them against a previous run.

  Args:
    output_dir: the output directory (exists).
    config: JSON-serializable settings, e.g. {'postprocess': True,
      'hop_seconds': 0.96, 'short_clip_policy': 'pad'}.

  Raises:
    ValueError: the directory holds records made with other settings.
  """
  path = os.path.join(output_dir, CONFIG_NAME)
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      compare_config(json.load(f), config, output_dir)
    return
  tmp = path + TEMP_SUFFIX
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(format_config(config))
  os.replace(tmp, path)


class OutputLock:
  """An exclusive lock on an output directory: two runs would mix shards.

  Held by `tools.extract`, and by `tools.extract_beam` on a local output
  directory, for the whole run.
  """

  def __init__(self, output_dir: str):
    self._path = os.path.join(output_dir, LOCK_NAME)
    self._fd = None

  def __enter__(self):
    try:
      self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise OutputWriteError.from_os_error(e, self._path) from e
    try:
      fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(self._fd)
      raise ValueError(
          f'another extraction is writing to {os.path.dirname(self._path)}; wait '
          f'for it to finish or use another --output directory') from None
    return self

  def __exit__(self, *exc_info):
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
