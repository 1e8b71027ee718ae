"""Tests of the label map (vggish.labels): the CSV, label matching, classifier classes."""

import numpy as np
import pytest

from vggish import labels

AUDIOSET_MAP = ('index,mid,display_name\n'
                '0,/m/09x0r,"Speech"\n'
                '1,/m/05zppz,"Male speech, man speaking"\n'
                '2,/m/0bt9lr,"Dog"\n'
                '3,/m/05tny_,"Bark"\n')


@pytest.fixture
def label_map_path(tmp_path):
  path = tmp_path / 'labels.csv'
  path.write_text(AUDIOSET_MAP)
  return path


def test_read_label_map_audioset_format(label_map_path):
  label_map = labels.read_label_map(label_map_path)
  assert len(label_map) == 4
  assert label_map.indices == (0, 1, 2, 3)
  assert label_map.mids[2] == '/m/0bt9lr'
  assert label_map.display_names[1] == 'Male speech, man speaking'
  lookup = label_map.lookup()
  assert lookup['Bark'] == 3 and lookup['/m/0bt9lr'] == 2


def test_read_label_map_rejects_other_formats(tmp_path):
  path = tmp_path / 'labels.csv'
  path.write_text('id,name\n0,Bark\n')
  with pytest.raises(ValueError, match='index,mid,display_name'):
    labels.read_label_map(path)
  path.write_text('index,mid,display_name\nzero,/m/x,X\n')
  with pytest.raises(ValueError, match='not an integer'):
    labels.read_label_map(path)
  path.write_text('index,mid,display_name\n0,/m/x,X\n0,/m/y,Y\n')
  with pytest.raises(ValueError, match='repeat an index'):
    labels.read_label_map(path)
  with pytest.raises(ValueError, match='does not exist'):
    labels.read_label_map(path.parent / 'missing.csv')


def test_csv_round_trip(label_map_path, tmp_path):
  label_map = labels.read_label_map(label_map_path)
  copy = tmp_path / 'copy.csv'
  labels.write_label_map(label_map, copy)
  assert labels.read_label_map(copy) == label_map
  assert labels.read_classes(copy) == label_map
  assert labels.parse_label_map(labels.format_label_map(label_map),
                                'text') == label_map


def test_display_name_is_matched_before_mid():
  label_map = labels.LabelMap(((0, 'Bark', 'Dog'), (1, '/m/b', 'Bark')))
  assert label_map.lookup() == {'Dog': 0, 'Bark': 1, '/m/b': 1}


def test_labels_with_commas_match_greedily():
  lookup = {'Male speech, man speaking': 1, 'Male speech': 7, 'Dog': 2}
  indices, unknown = labels.match_labels(
      ('Male speech', 'man speaking', 'Dog', 'Dog', 'Kazoo'), lookup)
  assert indices == (1, 2)
  assert unknown == ('Kazoo',)


def test_encode(label_map_path):
  label_map = labels.read_classes(label_map_path)
  # A display name containing a comma stays whole; mids work too.
  assert label_map.encode('Dog,Male speech, man speaking') == [1, 2]
  assert label_map.encode(['Dog', 'Male speech', 'man speaking']) == [1, 2]
  assert label_map.encode('/m/05tny_,Speech') == [0, 3]
  assert label_map.encode('') == []
  with pytest.raises(ValueError, match=r"unknown label\(s\) \['Cat'\]"):
    label_map.encode('Cat')


def test_with_names_numbers_new_names_after_the_last_index():
  built = labels.build_label_map(['Meow', 'Bark', 'Meow'])
  assert built.entries == ((0, '', 'Bark'), (1, '', 'Meow'))
  extended = built.with_names(['Applause', 'Bark'])
  assert extended.display_names == ('Bark', 'Meow', 'Applause')
  assert extended.indices == (0, 1, 2)
  assert built.with_names(['Bark']) is built


def test_as_classes_needs_indices_0_to_n_minus_1(tmp_path):
  shuffled = labels.LabelMap(((1, '/m/b', 'B'), (0, '/m/a', 'A')))
  classes = shuffled.as_classes('shuffled')
  assert classes.display_names == ('A', 'B') and classes.mids == ('/m/a', '/m/b')
  assert classes.as_classes('again') is classes
  bad = tmp_path / 'bad.csv'
  bad.write_text('index,mid,display_name\n1,/m/a,A\n')
  labels.read_label_map(bad)  # Fine for extraction...
  with pytest.raises(ValueError, match=r'needs the indices 0, 1, \.\.\., 0 '
                     r'\(its output columns\), got \[1\]'):
    labels.read_classes(bad)  # ...not as a classifier's outputs.
  assert str(bad) in _error(labels.read_classes, bad)
  with pytest.raises(ValueError, match='at least one class'):
    labels.LabelMap(()).as_classes('empty')


def test_multi_hot(label_map_path):
  label_map = labels.read_classes(label_map_path)
  np.testing.assert_array_equal(label_map.multi_hot([[0, 2], []]),
                                [[1, 0, 1, 0], [0, 0, 0, 0]])
  assert label_map.multi_hot([[1]]).dtype == np.float32
  with pytest.raises(ValueError, match='outside the label map'):
    label_map.multi_hot([[4]])
  with pytest.raises(ValueError, match='outside the label map'):
    label_map.multi_hot([[-1]])
  with pytest.raises(ValueError, match='as_classes'):
    labels.LabelMap(((1, '', 'B'), (0, '', 'A'))).multi_hot([[0]])


def _error(function, *args):
  with pytest.raises(ValueError) as info:
    function(*args)
  return str(info.value)
