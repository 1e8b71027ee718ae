"""Tests of input discovery, ids, the Freesound CSV and input labels (vggish.corpus)."""

import os

import pytest

from vggish import corpus
from vggish import labels


def _touch(path, content=b'x'):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(content)
  return path


@pytest.fixture
def tree(tmp_path):
  root = tmp_path / 'data'
  for rel in ('b.wav', 'a.FLAC', 'sub/c.mp3', 'sub/deeper/d.ogg', 'notes.txt',
              'sub/image.png'):
    _touch(root / rel)
  return root


def _ids(inputs):
  return [item.video_id for item in inputs]


def test_directory_is_walked_recursively_for_audio_extensions(tree):
  inputs = corpus.discover_inputs([tree])
  assert _ids(inputs) == ['a', 'b', 'sub/c', 'sub/deeper/d']
  assert inputs[2].path == os.path.join(str(tree), 'sub', 'c.mp3')
  assert all(item.labels == () and item.error is None for item in inputs)


def test_file_given_directly_is_named_by_its_stem_whatever_its_extension(tree):
  inputs = corpus.discover_inputs([tree / 'sub' / 'c.mp3', tree / 'notes.txt'])
  assert _ids(inputs) == ['c', 'notes']


def test_glob_ids_are_relative_to_the_pattern_base(tree):
  inputs = corpus.discover_inputs([str(tree / '**' / '*.ogg'),
                                   str(tree / 's*' / '*.mp3')])
  assert _ids(inputs) == ['sub/deeper/d', 'sub/c']
  # A matched directory is walked (ids still relative to the base); non-audio
  # matches are skipped.
  inputs = corpus.discover_inputs([str(tree / 'su?'), str(tree / '*.txt')])
  assert _ids(inputs) == ['sub/c', 'sub/deeper/d']


def test_same_file_twice_is_kept_once(tree):
  inputs = corpus.discover_inputs([tree, tree / 'b.wav', str(tree / '*.wav')])
  assert _ids(inputs) == ['a', 'b', 'sub/c', 'sub/deeper/d']


def test_two_files_with_one_id_are_rejected(tmp_path):
  _touch(tmp_path / 'x' / 'clip.wav')
  _touch(tmp_path / 'x' / 'clip.flac')
  with pytest.raises(ValueError, match="same id 'clip'"):
    corpus.discover_inputs([tmp_path / 'x'])


def test_bad_named_paths_are_failed_inputs_not_errors(tree, tmp_path):
  # One missing file or dangling link among many named ones is that input's
  # failure, as it would be inside a directory.
  dangling = tmp_path / 'dangling.wav'
  dangling.symlink_to(tmp_path / 'deleted.wav')
  inputs = corpus.discover_inputs([tree / 'b.wav', dangling, tmp_path / 'nope.flac', tree])
  by_id = {item.video_id: item for item in inputs}
  assert _ids(inputs) == ['b', 'dangling', 'nope', 'a', 'sub/c', 'sub/deeper/d']
  assert by_id['b'].error is None
  assert 'broken symbolic link' in by_id['dangling'].error
  assert 'deleted.wav' in by_id['dangling'].error
  assert by_id['nope'].error.endswith('no such file or directory; check the path')
  # The same link inside a walked directory is found by its audio extension
  # and fails when read.
  (tree / 'link.wav').symlink_to(tmp_path / 'deleted.wav')
  assert 'link' in _ids(corpus.discover_inputs([tree]))


def test_no_existing_input_at_all_and_empty_glob_are_usage_errors(tmp_path):
  with pytest.raises(ValueError, match='none of the 2 input.s. exists: .*nope.wav: no such file'):
    corpus.discover_inputs([tmp_path / 'nope.wav', tmp_path / 'gone.wav'])
  with pytest.raises(ValueError, match='matches no file'):
    corpus.discover_inputs([str(tmp_path / '*.wav')])


def test_folder_that_cannot_be_listed_is_a_failed_input(tree, monkeypatch):
  real_walk = os.walk

  def walk(top, onerror=None, **kwargs):
    for entry in real_walk(top, onerror=onerror, **kwargs):
      yield entry
      if entry[0] == str(tree):
        # As os.walk reports a folder it may not open (root ignores modes).
        onerror(PermissionError(13, 'Permission denied', str(tree / 'locked')))

  monkeypatch.setattr(corpus.os, 'walk', walk)
  inputs = corpus.discover_inputs([tree])
  locked = [item for item in inputs if item.video_id == 'locked']
  assert len(locked) == 1
  assert locked[0].error.endswith('cannot list this folder (Permission denied)')
  assert len(inputs) == 5


def test_directory_without_audio_gives_no_inputs(tmp_path):
  _touch(tmp_path / 'readme.md')
  assert corpus.discover_inputs([tmp_path]) == []


def test_input_csv_reads_labels_and_marks_missing_files(tmp_path):
  audio = tmp_path / 'audio'
  _touch(audio / 'one.wav')
  _touch(audio / 'sub' / 'two.wav')
  csv_path = tmp_path / 'train.csv'
  csv_path.write_text('fname,labels,freesound_id\n'
                      'one.wav,"Bark,Dog",1\n'
                      'sub/two.wav,Meow,2\n'
                      'gone.wav,Bark,3\n')
  inputs = corpus.read_input_csv(csv_path, audio)
  assert _ids(inputs) == ['one', 'sub/two', 'gone']
  assert inputs[0].labels == ('Bark', 'Dog')
  assert inputs[1].labels == ('Meow',)
  assert inputs[0].error is None and inputs[1].error is None
  assert inputs[2].error.endswith('no such file or directory; check the path')


def test_input_csv_defaults_to_its_directory_and_accepts_label_column(tmp_path):
  _touch(tmp_path / 'a.wav')
  csv_path = tmp_path / 'train.csv'
  csv_path.write_text('fname,label,manually_verified\na.wav,Hi-hat,0\n')
  (item,) = corpus.read_input_csv(csv_path)
  assert item.path == os.path.join(str(tmp_path), 'a.wav')
  assert item.labels == ('Hi-hat',)


def test_input_csv_errors(tmp_path):
  bad = tmp_path / 'bad.csv'
  bad.write_text('file,labels\na.wav,x\n')
  with pytest.raises(ValueError, match='fname'):
    corpus.read_input_csv(bad)
  with pytest.raises(ValueError, match='does not exist'):
    corpus.read_input_csv(tmp_path / 'none.csv')
  twice = tmp_path / 'twice.csv'
  twice.write_text('fname\na.wav\na.flac\n')
  with pytest.raises(ValueError, match='appears twice'):
    corpus.read_input_csv(twice)


AUDIOSET_MAP = ('index,mid,display_name\n'
                '0,/m/09x0r,"Speech"\n'
                '1,/m/05zppz,"Male speech, man speaking"\n'
                '2,/m/0bt9lr,"Dog"\n'
                '3,/m/05tny_,"Bark"\n')


def test_unknown_label_fails_that_input_only(tmp_path):
  path = tmp_path / 'labels.csv'
  path.write_text(AUDIOSET_MAP)
  inputs = [corpus.AudioInput('a', 'a.wav', labels=('Bark', 'Dog')),
            corpus.AudioInput('b', 'b.wav', labels=('Barking',)),
            corpus.AudioInput('c', 'c.wav')]
  resolved, label_map = corpus.prepare_labels(inputs, tmp_path / 'out', path)
  assert len(label_map) == 4
  assert resolved[0].label_indices == (3, 2) and resolved[0].error is None
  assert "unknown label(s) 'Barking'" in resolved[1].error
  assert str(path) in resolved[1].error
  assert resolved[2].label_indices == () and resolved[2].error is None
  # A given map is used where it is, not copied into the output.
  assert not (tmp_path / 'out').exists()


def test_built_label_map_is_sorted_written_and_extended_on_resume(tmp_path):
  out = tmp_path / 'out'
  out.mkdir()
  first = [corpus.AudioInput('a', 'a.wav', labels=('Meow', 'Bark')),
           corpus.AudioInput('b', 'b.wav', labels=('Bark',))]
  resolved, label_map = corpus.prepare_labels(first, out)
  assert label_map.display_names == ('Bark', 'Meow')
  assert [item.label_indices for item in resolved] == [(1, 0), (0,)]
  written = labels.read_label_map(out / corpus.LABEL_MAP_NAME)
  assert written == label_map
  # A later run with a new name keeps the old indices and appends the new one,
  # even though 'Applause' sorts first: records already written stay valid.
  second = first + [corpus.AudioInput('c', 'c.wav', labels=('Applause',))]
  resolved, label_map = corpus.prepare_labels(second, out)
  assert label_map.display_names == ('Bark', 'Meow', 'Applause')
  assert resolved[2].label_indices == (2,)
  assert labels.read_label_map(out / corpus.LABEL_MAP_NAME) == label_map


def test_no_labels_no_map(tmp_path):
  inputs = [corpus.AudioInput('a', 'a.wav')]
  resolved, label_map = corpus.prepare_labels(inputs, tmp_path)
  assert label_map is None and resolved == inputs
  assert not (tmp_path / corpus.LABEL_MAP_NAME).exists()


def test_symlinked_folders_are_followed_once(tree):
  os.symlink(tree / 'sub', tree / 'sub' / 'loop')  # A cycle.
  os.symlink(tree / 'sub' / 'deeper', tree / 'linked')
  inputs = corpus.discover_inputs([tree])
  # 'linked' reaches d.ogg first (sorted walk), so the file keeps that id.
  assert _ids(inputs) == ['a', 'b', 'linked/d', 'sub/c']
