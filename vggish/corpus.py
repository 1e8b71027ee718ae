"""Finding a corpus' audio files, naming them, and mapping their labels to indices.

An extraction run starts from what the user typed:

- audio files, given directly: the id is the file name without its extension;
- directories, walked recursively for files with an audio extension
  (`vggish.audio_io.AUDIO_EXTENSIONS`, any case): the id is the path relative
  to the directory, without the extension, with `/` separators
  (`dogs/bark_01` for `DIR/dogs/bark_01.wav`);
- glob patterns (`data/**/*.flac`): like a directory, relative to the pattern's
  directory part without wildcards (`data/`);
- or a Freesound-style CSV (`--input_csv`) with a `fname` column (paths relative
  to `audio_dir`, default the CSV's directory) and an optional `labels` column
  (or `label`, as in FSDKaggle2018) of comma-separated label names; the id is
  `fname` without its extension.

Ids are the `video_id` context feature of the written records and the key of
the manifest (a resumed run skips the ids already done), so two different files
with the same id are rejected up front rather than silently overwriting each
other's rows. The same file reached twice (a directory and a glob inside it) is
kept once, under its first id.

Labels are mapped to int64 indices with a `vggish.labels.LabelMap` (AudioSet's
`class_labels_indices.csv` format and its matching rules: display name, else
mid; names containing commas matched whole). Without a given map, one is built
from the CSV's label names (sorted, indices from 0) and written next to the
output; a resumed run extends that file rather than renumbering it, so the
indices already written stay valid.
"""

import csv
import dataclasses
import glob
import io
import logging
import os
import pathlib
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from vggish import audio_io
from vggish import files as files_lib
from vggish import labels as labels_lib

PathLike = Union[str, os.PathLike]

# The label map written next to the output when none is given.
LABEL_MAP_NAME = 'class_labels_indices.csv'
_GLOB_CHARS = frozenset('*?[')


@dataclasses.dataclass(frozen=True)
class AudioInput:
  """One input of an extraction run.

  Attributes:
    video_id: the record's `video_id` and the manifest key.
    path: the file to read (as found; relative paths are relative to the
      working directory of the run that found them).
    labels: label names as given in the CSV (empty without labels).
    label_indices: the labels' indices in the label map (set by
      `resolve_labels`).
    error: why this input cannot be extracted (a file listed in the CSV that
      does not exist, an unknown label); None when it can be tried.
  """
  video_id: str
  path: str
  labels: Tuple[str, ...] = ()
  label_indices: Tuple[int, ...] = ()
  error: Optional[str] = None


def normalized_extensions(extensions: Iterable[str]) -> frozenset:
  """Lowercase extensions with their dot ('WAV' -> '.wav')."""
  return frozenset(
      e.lower() if e.startswith('.') else '.' + e.lower() for e in extensions)


def has_audio_extension(path: str, extensions: frozenset) -> bool:
  """Whether `path` ends with one of `normalized_extensions` (any case)."""
  return os.path.splitext(path)[1].lower() in extensions


def id_from_relative(relative: str) -> str:
  """The id of a file from its path relative to the folder given: no extension, `/`."""
  return pathlib.PurePath(os.path.splitext(relative)[0]).as_posix()


def _walk(directory: str, extensions: frozenset,
          unreadable: Optional[List[Tuple[str, str]]] = None) -> List[str]:
  """Audio files under `directory`, recursively, in a stable (sorted) order.

  Args:
    directory: the folder to walk.
    extensions: normalized audio extensions.
    unreadable: if given, gets (folder, reason) for each folder that cannot be
      listed (os.walk would skip it without a word).
  """
  found = []
  visited = set()

  def onerror(error: OSError) -> None:
    logging.warning('cannot list %s: %s', error.filename, error.strerror)
    if unreadable is not None:
      unreadable.append((error.filename, error.strerror or str(error)))

  for root, dirs, files in os.walk(directory, followlinks=True, onerror=onerror):
    # Symlinked folders are followed (datasets are often assembled from
    # links), but each real folder once, so a link cycle cannot loop forever.
    real = os.path.realpath(root)
    if real in visited:
      dirs[:] = []
      continue
    visited.add(real)
    dirs.sort()  # os.walk visits dirs in list order: sorting makes runs repeatable.
    for name in sorted(files):
      if has_audio_extension(name, extensions):
        found.append(os.path.join(root, name))
  return found


def glob_base(pattern: str) -> str:
  """The leading directories of a glob pattern that contain no wildcard."""
  parts = pathlib.PurePath(pattern).parts
  base = []
  for part in parts[:-1]:
    if _GLOB_CHARS & set(part):
      break
    base.append(part)
  return os.path.join(*base) if base else '.'


def is_glob(arg: str) -> bool:
  """Whether a command-line argument holds glob wildcards."""
  return bool(_GLOB_CHARS & set(arg))


def discover_inputs(args: Sequence[PathLike],
                    extensions: Iterable[str] = audio_io.AUDIO_EXTENSIONS
                    ) -> List[AudioInput]:
  """Expands files, directories and globs into the run's inputs.

  Args:
    args: paths of files (taken whatever their extension: the user named them),
      directories (walked recursively for `extensions`) or glob patterns (`**`
      recurses; matched directories are walked; matched files need an audio
      extension).
    extensions: file name extensions that count as audio in directories and
      globs.

  Returns:
    The inputs in argument order (directories and globs sorted), each file
    once. A named file that is missing, a broken symbolic link, or a folder
    that cannot be listed is an input with `error` set (recorded as failed,
    like a file that cannot be decoded), so that one bad path cannot stop a
    corpus.

  Raises:
    ValueError: no argument names anything that exists, a glob matches
      nothing, or two different files get the same id.
  """
  extensions = normalized_extensions(extensions)
  found: List[AudioInput] = []
  for arg in args:
    arg = os.fspath(arg)
    unreadable: List[Tuple[str, str]] = []
    if os.path.isdir(arg):
      base = arg
      paths = _walk(arg, extensions, unreadable)
    elif is_glob(arg) and not os.path.lexists(arg):
      base = glob_base(arg)
      matches = sorted(glob.glob(arg, recursive=True))
      if not matches:
        raise ValueError(f'the pattern {arg!r} matches no file')
      paths = []
      for match in matches:
        if os.path.isdir(match):
          paths.extend(_walk(match, extensions, unreadable))
        elif has_audio_extension(match, extensions):
          paths.append(match)
    else:
      # A file (taken whatever its extension: the user named it), or a path
      # that is not there, which fails as that input.
      found.append(AudioInput(
          video_id=id_from_relative(os.path.basename(arg)), path=arg,
          error=audio_io.why_not_a_file(arg)))
      continue
    found.extend(
        AudioInput(video_id=id_from_relative(os.path.relpath(p, base)), path=p)
        for p in paths)
    found.extend(
        AudioInput(video_id=_folder_id(folder, base), path=folder,
                   error=f'{folder}: cannot list this folder ({reason})')
        for folder, reason in unreadable)
  check_some_exist(found)
  return _deduplicate(found)


def check_some_exist(inputs: Sequence[AudioInput]) -> None:
  """Raises ValueError when there are inputs but none of them can be tried.

  One missing file among many is that file's failure; when every input is
  missing, the command itself is wrong (a typo in a folder, a wrong
  --audio_dir), and saying so beats a manifest of failures.
  """
  if inputs and all(item.error is not None for item in inputs):
    shown = '; '.join(item.error for item in inputs[:3])
    more = f'; and {len(inputs) - 3} more' if len(inputs) > 3 else ''
    raise ValueError(f'none of the {len(inputs)} input(s) exists: {shown}{more}')


def _folder_id(folder: str, base: str) -> str:
  relative = os.path.relpath(folder, base)
  if relative == '.':
    relative = os.path.basename(os.path.abspath(folder))
  return pathlib.PurePath(relative).as_posix()


def _same_id_error(video_id: str, first: str, second: str) -> ValueError:
  return ValueError(
      f'two inputs would get the same id {video_id!r}: {first!r} and {second!r} '
      f'(ids are paths without extension); rename one or extract them into '
      f'different output directories')


def unique_ids(inputs: Sequence[AudioInput]) -> List[AudioInput]:
  """Drops an input named twice (same id, same path); rejects one id for two paths.

  For inputs gathered from several sources (INPUT arguments and a CSV, or
  remote listings), where the paths are compared as given.

  Raises:
    ValueError: two different paths would get the same id.
  """
  by_id: Dict[str, AudioInput] = {}
  unique = []
  for item in inputs:
    other = by_id.get(item.video_id)
    if other is not None:
      if other.path == item.path:
        continue
      raise _same_id_error(item.video_id, other.path, item.path)
    by_id[item.video_id] = item
    unique.append(item)
  return unique


def _deduplicate(inputs: Sequence[AudioInput]) -> List[AudioInput]:
  """Drops repeats of one file; rejects two files that share an id."""
  by_id: Dict[str, AudioInput] = {}
  seen_files = set()
  unique = []
  for item in inputs:
    real = os.path.realpath(item.path)
    if real in seen_files:
      continue
    other = by_id.get(item.video_id)
    if other is not None:
      raise _same_id_error(item.video_id, other.path, item.path)
    seen_files.add(real)
    by_id[item.video_id] = item
    unique.append(item)
  return unique


def _split_labels(field: str) -> Tuple[str, ...]:
  return tuple(piece.strip() for piece in field.split(',') if piece.strip())


def read_input_csv(csv_path: PathLike,
                   audio_dir: Optional[PathLike] = None,
                   files: files_lib.LocalFiles = files_lib.LOCAL) -> List[AudioInput]:
  """Reads a Freesound-style `fname[,labels]` CSV into inputs.

  Args:
    csv_path: a CSV with a header row holding `fname` and optionally `labels`
      (or `label`): comma-separated label names, quoted when there are
      several. Other columns are ignored.
    audio_dir: directory that `fname` is relative to; default the CSV's own
      directory.
    files: where the CSV and audio are (`vggish.files`); default local.

  Returns:
    One input per row, in file order. A row whose file does not exist is kept
    with `error` set, so it is recorded as failed instead of vanishing.

  Raises:
    ValueError: the CSV is missing, has no `fname` column, repeats an id, or
      `audio_dir` is not a directory.
  """
  csv_path = os.fspath(csv_path)
  if not files.isfile(csv_path):
    raise ValueError(f'--input_csv {csv_path!r} does not exist')
  if audio_dir is None:
    audio_dir = files.dirname(csv_path) or '.'
  audio_dir = os.fspath(audio_dir)
  if not files.isdir(audio_dir):
    raise ValueError(f'--audio_dir {audio_dir!r} is not a directory')
  reader = csv.DictReader(io.StringIO(files.read_text(csv_path), newline=''))
  fields = [name.strip() for name in reader.fieldnames or ()]
  reader.fieldnames = fields
  if 'fname' not in fields:
    raise ValueError(
        f'{csv_path}: expected a header with a `fname` column (and optionally '
        f'`labels`), got {fields}')
  label_field = next((n for n in ('labels', 'label') if n in fields), None)
  inputs = []
  for row in reader:
    fname = (row.get('fname') or '').strip()
    if not fname:
      continue
    labels = _split_labels(row.get(label_field) or '') if label_field else ()
    path = files.join(audio_dir, fname)
    inputs.append(AudioInput(video_id=id_from_relative(fname), path=path,
                             labels=labels, error=files.why_not_a_file(path)))
  seen = {}
  for item in inputs:
    if item.video_id in seen:
      raise ValueError(
          f'{csv_path}: the id {item.video_id!r} appears twice ({seen[item.video_id]!r} '
          f'and {item.path!r}); each row must name a different file')
    seen[item.video_id] = item.path
  return inputs


def resolve_labels(inputs: Sequence[AudioInput], label_map: labels_lib.LabelMap,
                   label_map_name: str = 'the label map') -> List[AudioInput]:
  """Sets each input's `label_indices`; unknown labels make the input fail.

  An input with a label the map lacks gets `error` set (naming the labels and
  the map), rather than stopping the run: one typo should not cost a corpus.

  Args:
    inputs: inputs with `labels` names.
    label_map: the map to use.
    label_map_name: how the map is named in error messages (its path).

  Returns:
    New inputs with `label_indices` (and `error` where a label is unknown).
  """
  lookup = label_map.lookup()
  resolved = []
  for item in inputs:
    indices, unknown = labels_lib.match_labels(item.labels, lookup)
    error = item.error
    if unknown and error is None:
      error = (f'unknown label(s) {", ".join(map(repr, unknown))}: not a '
               f'display_name or mid in {label_map_name}')
    resolved.append(dataclasses.replace(item, label_indices=indices, error=error))
  return resolved


def prepare_labels(inputs: Sequence[AudioInput], output_dir: PathLike,
                   label_map_path: Optional[PathLike] = None,
                   files: files_lib.LocalFiles = files_lib.LOCAL
                   ) -> Tuple[List[AudioInput], Optional[labels_lib.LabelMap]]:
  """Chooses the label map of a run and resolves every input's labels.

  - With `label_map_path`: that map is used as is (and not copied).
  - Without, when some input has labels: the map in `output_dir`
    (`class_labels_indices.csv`, from an earlier run) extended by the new
    names, or a new sorted map; it is (re)written there.
  - Without labels anywhere and no map: (inputs unchanged, None).

  Args:
    inputs: the run's inputs.
    output_dir: the extraction output directory (must exist if a map is to be
      written).
    label_map_path: an AudioSet-format label map, or None.
    files: where the maps are (`vggish.files`); default local.

  Returns:
    (inputs with label indices, the label map or None).

  Raises:
    ValueError: the given label map cannot be read.
  """
  if label_map_path is not None:
    label_map = labels_lib.read_label_map(label_map_path, files)
    return resolve_labels(inputs, label_map, os.fspath(label_map_path)), label_map
  names = [label for item in inputs for label in item.labels]
  local_path = files.join(os.fspath(output_dir), LABEL_MAP_NAME)
  present = files.exists(local_path)
  if not names and not present:
    return list(inputs), None
  existing = (labels_lib.read_label_map(local_path, files) if present
              else labels_lib.LabelMap(()))
  label_map = existing.with_names(names)
  if label_map is not existing or not present:
    if existing.entries:
      logging.info('adding %d new label(s) to %s', len(label_map) - len(existing),
                   local_path)
    labels_lib.write_label_map(label_map, local_path, files)
  return resolve_labels(inputs, label_map, local_path), label_map
