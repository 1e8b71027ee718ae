"""Tests of vggish.analysis.maps and `python -m tools.map`: projections, colors, the page, the PNG.

The browser test opens the page in headless Chromium (Debian's `chromium`
package; skipped with the reason where none is installed) and reads back the
DOM: the page must draw every point, record no script error, and print
nothing on the console (a blocked network fetch, a CSP violation or an
uncaught error all print a CONSOLE line on Chromium's stderr).
"""

import html
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request

import numpy as np
import pytest
import soundfile

from vggish import extras
from vggish import labels as labels_lib
from vggish.analysis import clips as clips_lib
from vggish.analysis import maps

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NASTY_ID = 'a</script><script>window.hacked=1</script>&<!--'
BROWSERS = ('chromium', 'chromium-browser', 'google-chrome')

# t-SNE needs scikit-learn and the PNG matplotlib: the `analysis` extra.
needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec('sklearn') is None,
    reason='t-SNE needs scikit-learn: pip install -e ".[analysis]"')
needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec('matplotlib') is None,
    reason='the PNG needs matplotlib: pip install -e ".[analysis]"')


def _clips(vectors_per_clip, labels=None, ids=None, label_map=None):
  """A `Clips` in memory: clip i has the examples vectors_per_clip[i] [k_i, 128]."""
  count = len(vectors_per_clip)
  labels = labels if labels is not None else [[] for _ in range(count)]
  ids = ids if ids is not None else [f'clip{i:03d}' for i in range(count)]
  lengths = [len(v) for v in vectors_per_clip]
  label_lengths = [len(k) for k in labels]
  embeddings = (np.concatenate(vectors_per_clip).astype(np.float32) if sum(lengths)
                else np.zeros((0, 128), np.float32))
  return clips_lib.Clips(
      ids=np.array(ids, dtype=object),
      labels=np.array([k for ks in labels for k in ks], dtype=np.int64),
      label_splits=np.concatenate([[0], np.cumsum(label_lengths)]).astype(np.int64),
      embeddings=embeddings,
      splits=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
      start_seconds=np.zeros(count, np.float32),
      end_seconds=np.ones(count, np.float32),
      hop_seconds=np.full(count, 0.96, np.float32),
      embedding_format='float32', label_map=label_map)


def _clustered(num_clips, num_clusters=3, seed=0):
  """Clips around `num_clusters` centers, each clip 1-3 examples; labels = cluster."""
  rng = np.random.default_rng(seed)
  centers = 3 * rng.standard_normal((num_clusters, 128))
  cluster = np.arange(num_clips) % num_clusters
  vectors = [centers[c] + 0.3 * rng.standard_normal((1 + i % 3, 128))
             for i, c in enumerate(cluster)]
  return vectors, cluster


def _map(num_clips=30, ids=None, method='pca'):
  vectors, cluster = _clustered(num_clips)
  label_map = labels_lib.build_label_map(['Bark', 'Meow', 'Speech'])
  return maps.build_map(_clips(vectors, [[int(c)] for c in cluster], ids=ids,
                               label_map=label_map), method=method)


def _nearest_neighbor_purity(xy, cluster):
  distances = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
  np.fill_diagonal(distances, np.inf)
  return float((cluster[distances.argmin(axis=1)] == cluster).mean())


def test_pca_shapes_determinism_and_tiny_inputs():
  vectors, cluster = _clustered(40)
  x = np.stack([v.mean(axis=0) for v in vectors])
  xy = maps.project(x, 'pca')
  assert xy.shape == (40, 2) and xy.dtype == np.float32
  np.testing.assert_array_equal(xy, maps.project(x, 'pca'))
  assert _nearest_neighbor_purity(xy, cluster) == 1.0
  # The first axis carries the most variance, as PCA's should.
  assert xy[:, 0].var() >= xy[:, 1].var()
  np.testing.assert_array_equal(maps.project(x[:1], 'pca'), np.zeros((1, 2), np.float32))
  two = maps.project(x[:2], 'pca')
  assert two.shape == (2, 2) and two[0, 0] == -two[1, 0] and not two[:, 1].any()
  assert maps.project(np.ones((5, 128)), 'pca').shape == (5, 2)
  assert maps.project(np.zeros((3, 1)), 'pca').shape == (3, 2)  # One dimension: padded.


@needs_sklearn
def test_tsne_is_seeded_and_separates_clusters():
  vectors, cluster = _clustered(60)
  x = np.stack([v.mean(axis=0) for v in vectors])
  xy = maps.project(x, 'tsne', seed=3)
  assert xy.shape == (60, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
  np.testing.assert_array_equal(xy, maps.project(x, 'tsne', seed=3))
  assert _nearest_neighbor_purity(xy, cluster) == 1.0


@needs_sklearn
@pytest.mark.parametrize('num_points', [1, 2, 3, 4, 5])
def test_tsne_of_a_few_points_does_not_fail(num_points, caplog):
  x = np.random.default_rng(0).standard_normal((num_points, 128))
  xy = maps.project(x, 'tsne')
  assert xy.shape == (num_points, 2) and np.isfinite(xy).all()
  if num_points < maps.MIN_NONLINEAR_POINTS:
    np.testing.assert_array_equal(xy, maps.project(x, 'pca'))
    assert 'using PCA' in caplog.text


@needs_sklearn
def test_tsne_of_identical_points_falls_back_to_pca():
  # scikit-learn's t-SNE crashes the process on these (a zero spread in its PCA init).
  xy = maps.project(np.ones((10, 128)), 'tsne')
  np.testing.assert_array_equal(xy, np.zeros((10, 2), np.float32))


@pytest.mark.parametrize('vectors, method, phrase', [
    (np.zeros((0, 128)), 'pca', 'nothing to map'),
    (np.zeros(128), 'pca', 'must be [n, d]'),
    (np.full((3, 128), np.nan), 'pca', 'NaN or Inf'),
    (np.zeros((3, 128)), 'isomap', 'use one of tsne, pca, umap'),
])
def test_project_rejects_bad_input(vectors, method, phrase):
  with pytest.raises(ValueError, match=re.escape(phrase)):
    maps.project(vectors, method)


def test_missing_scikit_learn_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, 'sklearn', None)
  monkeypatch.delitem(sys.modules, 'sklearn.manifold', raising=False)
  with pytest.raises(extras.MissingExtraError, match=re.escape('pip install -e ".[analysis]"')):
    maps.project(np.zeros((10, 128)), 'tsne')
  assert maps.project(np.eye(10, 128), 'pca').shape == (10, 2)  # PCA needs no extra.


def test_umap_is_seeded_when_installed():
  pytest.importorskip('umap', reason='umap-learn is not installed (pip install -e ".[umap]")')
  vectors, cluster = _clustered(60)
  x = np.stack([v.mean(axis=0) for v in vectors])
  xy = maps.project(x, 'umap', seed=3)
  assert xy.shape == (60, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
  np.testing.assert_array_equal(xy, maps.project(x, 'umap', seed=3))
  assert _nearest_neighbor_purity(xy, cluster) == 1.0
  assert maps.project(x[:4], 'umap').shape == (4, 2)


def test_missing_umap_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, 'umap', None)
  with pytest.raises(extras.MissingExtraError, match=re.escape('pip install -e ".[umap]"')):
    maps.project(np.zeros((10, 128)), 'umap')


def test_clip_vectors_are_means_and_leave_off_clips_without_examples(caplog):
  rng = np.random.default_rng(1)
  vectors = [rng.standard_normal((2, 128)), np.zeros((0, 128)), rng.standard_normal((3, 128)),
             np.zeros((0, 128))]
  clips = _clips(vectors)
  means, kept = maps.clip_vectors(clips)
  np.testing.assert_array_equal(kept, [0, 2])
  np.testing.assert_allclose(means, [vectors[0].mean(0), vectors[2].mean(0)], atol=1e-6)
  assert '2 of 4 clips have no examples' in caplog.text and "'clip001'" in caplog.text
  clip_map = maps.build_map(clips, method='pca')
  assert clip_map.ids == ('clip000', 'clip002') and clip_map.without_examples == 2
  assert 'clips without examples left off' in clip_map.describe()
  with pytest.raises(ValueError, match='none of the 2 clips has an example'):
    maps.build_map(_clips([np.zeros((0, 128))] * 2), method='pca')


def test_colors_follow_the_most_frequent_label():
  names = {0: 'Music', 1: 'Speech', 2: 'Dog', 3: 'Cat'}
  # Music on 3 clips, Speech on 2, Dog and Cat on 1; one clip without labels.
  clip_labels = [[0], [1, 0], [2, 1], [3], [0, 3, 0], []]
  groups, legend = maps.color_groups(clip_labels, names)
  assert [(e.name, e.count) for e in legend] == [
      ('Music', 3), ('Speech', 1), ('Cat', 1), ('no label', 1)]
  assert [legend[g].name for g in groups] == ['Music', 'Music', 'Speech', 'Cat', 'Music',
                                              'no label']
  assert legend[-1].color == maps.NO_LABEL_COLOR
  assert [e.color for e in legend[:3]] == list(maps.PALETTE[:3])
  groups, legend = maps.color_groups(clip_labels, names, max_legend=1)
  assert [(e.name, e.count) for e in legend] == [('Music', 3), ('other', 2), ('no label', 1)]
  assert legend[1].color == maps.OTHER_COLOR
  groups, legend = maps.color_groups(clip_labels, {}, max_legend=0)
  assert [e.name for e in legend] == ['other', 'no label']
  with pytest.raises(ValueError, match='max_legend'):
    maps.color_groups(clip_labels, names, max_legend=len(maps.PALETTE) + 1)


def test_max_clips_draws_a_seeded_sample():
  vectors, cluster = _clustered(50)
  clips = _clips(vectors, [[int(c)] for c in cluster])
  first = maps.build_map(clips, method='pca', max_clips=10, seed=5)
  assert len(first) == 10 and list(first.ids) == sorted(first.ids)
  assert first.ids == maps.build_map(clips, method='pca', max_clips=10, seed=5).ids
  assert first.ids != maps.build_map(clips, method='pca', max_clips=10, seed=6).ids
  assert 'a random 10 of 50' in first.describe()
  assert len(maps.build_map(clips, method='pca', max_clips=80)) == 50
  with pytest.raises(ValueError, match='max_clips'):
    maps.build_map(clips, method='pca', max_clips=0)


def _page_data(page):
  match = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', page, re.S)
  assert match, 'the page has no data'
  return json.loads(match.group(1))


def test_page_is_self_contained_and_escapes_ids(tmp_path):
  ids = [NASTY_ID] + [f'clip{i:03d}' for i in range(1, 30)]
  clip_map = _map(30, ids=ids)
  path = maps.render_html(clip_map, tmp_path / 'map.html', title='<b>Dogs & cats</b>')
  page = pathlib.Path(path).read_text(encoding='utf-8')
  for reference in ('src="http', "src='http", 'href="http', '@import', 'url(http', 'url(',
                    'http://', 'https://', '<link rel="stylesheet"', 'fonts.'):
    assert reference not in page, reference
  # Only the page's own two scripts and its data: nothing can close them early.
  assert page.count('</script>') == 3 and NASTY_ID not in page and '<!--' not in page
  assert '<title>&lt;b&gt;Dogs &amp; cats&lt;/b&gt;</title>' in page
  data = _page_data(page)
  assert data['ids'] == ids and 'audio' not in data
  assert len(data['xy']) == 60 and min(data['xy']) >= 0 and max(data['xy']) <= 1
  assert sorted(data['order']) == list(range(30))
  assert {e['name'] for e in data['legend']} == {'Bark', 'Meow', 'Speech'}
  assert [data['labelNames'][k] for k in data['labels'][1]] == ['Meow']
  assert "default-src 'none'" in page  # The browser itself refuses to fetch anything else.
  assert not list(tmp_path.glob('.*.tmp'))  # Written through a temporary file.


def test_audio_urls_are_relative_and_only_with_audio(tmp_path):
  audio_dir = tmp_path / 'audio'
  (audio_dir / 'dogs').mkdir(parents=True)
  ids = ['dogs/bark 1', 'cat#2', 'no_file']
  for name in ('dogs/bark 1.wav', 'cat#2.flac', 'unrelated.wav'):
    soundfile.write(str(audio_dir / name), np.zeros(1600), 16000)
  (audio_dir / 'notes.txt').write_text('not audio')
  found = maps.find_audio(ids, audio_dir)
  assert set(found) == {'dogs/bark 1', 'cat#2'}
  vectors, _ = _clustered(3)
  clip_map = maps.build_map(_clips(vectors, ids=ids), method='pca')
  page_path = tmp_path / 'out' / 'map.html'
  page_path.parent.mkdir()
  maps.render_html(clip_map, page_path, audio_files=found)
  data = _page_data(page_path.read_text(encoding='utf-8'))
  assert data['audio'][2] is None
  for clip_id, url in zip(ids[:2], data['audio'][:2]):
    assert not url.startswith(('/', 'file:', 'http'))
    # The URL, resolved against the page's address, is the clip's file.
    resolved = urllib.parse.urljoin(page_path.as_uri(), url)
    assert pathlib.Path(urllib.request.url2pathname(urllib.parse.urlparse(resolved).path)) == \
        pathlib.Path(found[clip_id]).resolve()
  with pytest.raises(ValueError, match='none of the 3 audio files'):
    maps.find_audio(['other'], audio_dir)
  with pytest.raises(ValueError, match='not a directory'):
    maps.find_audio(ids, tmp_path / 'missing')


@needs_matplotlib
def test_png_is_written_beside_the_page(tmp_path):
  clip_map = _map(40)
  path = maps.render_png(clip_map, maps.png_path(tmp_path / 'map.html'))
  assert path == str(tmp_path / 'map.png')
  assert pathlib.Path(path).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  from matplotlib import image  # pylint: disable=import-outside-toplevel
  pixels = image.imread(path)
  assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
  assert not list(tmp_path.glob('.*.tmp'))


def _write_records(directory, num_clips=12, empty=1):
  from vggish import records  # pylint: disable=import-outside-toplevel
  directory.mkdir(parents=True, exist_ok=True)
  vectors, cluster = _clustered(num_clips)
  examples = [records.make_sequence_example(
      f'clip{i:02d}', np.clip(v * 20 + 128, 0, 255).astype(np.uint8), labels=[int(c)])
              for i, (v, c) in enumerate(zip(vectors, cluster))]
  examples += [records.make_sequence_example(f'empty{i}', np.zeros((0, 128), np.uint8))
               for i in range(empty)]
  records.write_records(directory / 'part-0.tfrecord', examples)
  labels_lib.write_label_map(labels_lib.build_label_map(['Bark', 'Meow', 'Speech']),
                             directory / clips_lib.LABEL_MAP_NAME)
  return directory


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=str(REPO_ROOT))


def _run_cli(*args, prelude=None):
  if prelude is None:
    command = [sys.executable, '-m', 'tools.map', *map(str, args)]
  else:  # Runs the module after `prelude` (e.g. hiding a package).
    script = (f'{prelude}; import runpy, sys; sys.argv = ["tools.map"] + sys.argv[1:]; '
              f'runpy.run_module("tools.map", run_name="__main__")')
    command = [sys.executable, '-c', script, *map(str, args)]
  return subprocess.run(command, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True,
                        timeout=300)


def _assert_usage_error(proc, *phrases):
  """Exit status 2 and one `error:` line, the last (TensorFlow's C++ start-up lines may precede it)."""
  assert proc.returncode == 2, proc.stderr
  assert 'Traceback' not in proc.stderr
  lines = proc.stderr.strip().splitlines()
  errors = [line for line in lines if line.startswith('error: ')]
  assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
  for phrase in phrases:
    assert phrase in errors[0], errors[0]


@needs_sklearn
@needs_matplotlib
def test_cli_writes_the_page_and_the_png(tmp_path):
  records_dir = _write_records(tmp_path / 'records')
  audio_dir = tmp_path / 'audio'
  audio_dir.mkdir()
  for name in ('clip00.wav', 'clip03.flac'):
    soundfile.write(str(audio_dir / name), np.zeros(1600), 16000)
  output = tmp_path / 'out' / 'map.html'
  output.parent.mkdir()
  proc = _run_cli('--output', output, '--method', 'pca', '--title', 'Twelve clips',
                  '--audio_dir', audio_dir, records_dir)
  assert proc.returncode == 0, proc.stderr
  assert 'audio for 2 of 12 clips' in proc.stderr
  assert f'wrote {output} and {tmp_path / "out" / "map.png"}' in proc.stderr
  assert '1 of 13 clips have no examples' in proc.stderr
  data = _page_data(output.read_text(encoding='utf-8'))
  assert data['title'] == 'Twelve clips' and len(data['ids']) == 12
  assert {e['name'] for e in data['legend']} == {'Bark', 'Meow', 'Speech'}  # The map beside.
  assert data['audio'][0] == '../audio/clip00.wav' and data['audio'][3] == '../audio/clip03.flac'
  assert data['audio'].count(None) == 10
  assert (tmp_path / 'out' / 'map.png').read_bytes()[:4] == b'\x89PNG'


@needs_sklearn
@needs_matplotlib
def test_cli_usage_errors_are_one_line(tmp_path):
  records_dir = _write_records(tmp_path / 'records')
  out = tmp_path / 'map.html'
  _assert_usage_error(_run_cli('--output', out), 'give RECORDS')
  _assert_usage_error(_run_cli('--output', tmp_path / 'map.png', records_dir), 'end in .html')
  _assert_usage_error(_run_cli('--output', out, tmp_path / 'none*.tfrecord'), 'no TFRecord files match')
  _assert_usage_error(_run_cli('--output', out, '--max_clips', '0', records_dir), '--max_clips')
  _assert_usage_error(_run_cli('--output', out, '--audio_dir', tmp_path / 'nope', records_dir),
                      'not a directory')
  _assert_usage_error(
      _run_cli('--output', out, records_dir, prelude='import sys; sys.modules["sklearn"] = None'),
      'pip install -e ".[analysis]"')
  assert not out.exists()


def _browser():
  for name in BROWSERS:
    path = shutil.which(name)
    if path:
      return path
  return None


def _open_in_browser(browser, page, tmp_path):
  """Chromium's DOM of `page` after it ran, and the console lines it printed."""
  proc = subprocess.run(
      [browser, '--headless', '--no-sandbox', '--disable-gpu', '--enable-logging=stderr',
       '--v=0', '--virtual-time-budget=5000', f'--user-data-dir={tmp_path / "profile"}',
       '--no-first-run', '--window-size=1200,800', '--autoplay-policy=no-user-gesture-required',
       '--dump-dom', pathlib.Path(page).as_uri()],
      capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  # Chromium logs every console message (log, error, uncaught exception, CSP
  # violation) as an ':INFO:CONSOLE' line, whatever its level.
  console = [line for line in proc.stderr.splitlines() if ':CONSOLE' in line]
  return proc.stdout, console


def _body_attributes(dom):
  match = re.search(r'<body([^>]*)>', dom)
  assert match, dom[:500]
  return {name: html.unescape(value)
          for name, value in re.findall(r'([\w-]+)="([^"]*)"', match.group(1))}


# Runs right after the page's own script, while the document is still loading:
# hovers point 0, clicks it, and writes what happened on <body> (the tooltip's
# text, the clip playing, its audio's length). Clicking before the load event,
# not in its handler, matters: a media element fetching its source delays the
# document's load event, and so Chromium's --dump-dom, until the metadata is in;
# a click after load raced the dump (the audio's length was sometimes missing).
_INTERACTION = '''<script>
(function () {
  var body = document.body, canvas = document.getElementById('map');
  var audio = document.getElementById('audio');
  audio.addEventListener('loadedmetadata', function () {
    body.setAttribute('data-test-audio-seconds', String(audio.duration));
  });
  audio.addEventListener('error', function () {
    body.setAttribute('data-test-audio-error', String(audio.error && audio.error.code));
  });
  var box = canvas.getBoundingClientRect(), p = window.clipMap.screenPosition(0);
  var at = {clientX: box.left + p[0], clientY: box.top + p[1], bubbles: true, pointerId: 1,
            isPrimary: true, pointerType: 'mouse'};
  canvas.dispatchEvent(new PointerEvent('pointermove', at));
  body.setAttribute('data-test-tooltip', document.getElementById('tooltip').textContent);
  canvas.dispatchEvent(new PointerEvent('pointerdown', at));
  canvas.dispatchEvent(new PointerEvent('pointerup', at));
  body.setAttribute('data-test-now-playing', document.getElementById('now-playing').textContent);
})();
</script>
'''


@needs_sklearn
@pytest.mark.skipif(_browser() is None,
                    reason=f'no headless browser installed ({", ".join(BROWSERS)}); on Debian: '
                           f'apt-get install chromium')
def test_page_draws_every_point_in_a_real_browser(tmp_path):
  browser = _browser()
  # The check can fail: a console error and an uncaught one are both seen.
  control = tmp_path / 'control.html'
  control.write_text('<!DOCTYPE html><body><script>console.error("deliberate");</script>'
                     '<script>throw new Error("uncaught");</script></body>')
  _, console = _open_in_browser(browser, control, tmp_path)
  assert any('deliberate' in line for line in console), console
  assert any('Uncaught Error: uncaught' in line for line in console), console

  audio_dir = tmp_path / 'audio'
  audio_dir.mkdir()
  # The '/' in NASTY_ID make folders: tools.extract's ids are relative paths.
  ids = [NASTY_ID] + [f'clip{i:03d}' for i in range(1, 300)]
  for clip_id in ids[:5]:
    (audio_dir / clip_id).parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(audio_dir / f'{clip_id}.wav'), np.zeros(1600), 16000)
  clip_map = _map(300, ids=ids, method='tsne')
  page = maps.render_html(clip_map, tmp_path / 'map.html',
                          audio_files=maps.find_audio(ids, audio_dir))
  dom, console = _open_in_browser(browser, page, tmp_path)
  attributes = _body_attributes(dom)
  assert 'data-map-error' not in attributes, attributes
  assert attributes.get('data-points-drawn') == '300', attributes
  assert not console, console
  assert dom.count('<button') == len(clip_map.legend)  # The legend was built.

  # Hover and click point 0 (the id full of markup): its tooltip, and its audio plays.
  driven = tmp_path / 'driven.html'
  driven.write_text(pathlib.Path(page).read_text(encoding='utf-8').replace(
      '</body>', _INTERACTION + '</body>'), encoding='utf-8')
  dom, console = _open_in_browser(browser, driven, tmp_path)
  attributes = _body_attributes(dom)
  assert not console, console
  assert 'data-map-error' not in attributes, attributes
  assert attributes['data-test-tooltip'].startswith(ids[0]), attributes
  assert clip_map.labels[0][0] in attributes['data-test-tooltip']
  assert 'click to play' in attributes['data-test-tooltip']
  assert attributes['data-test-now-playing'].startswith(ids[0]), attributes
  assert 'data-test-audio-error' not in attributes, attributes
  assert float(attributes['data-test-audio-seconds']) == pytest.approx(0.1), attributes
