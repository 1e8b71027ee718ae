r"""Both heads on AudioSet's balanced train embeddings, with a held-out test split.

  python -m classifier.experiments.audioset_baseline \
    --records='../shared/real/audioset_bal_train/*.tfrecord' \
    --label_map=../shared/real/class_labels_indices.csv \
    --output_dir=/tmp/audioset_baseline

Each head is trained by `classifier.train.train` with its defaults on the
same hashed split (10 % validation for early stopping and thresholds, 10 %
test, seed 0, by video id), and evaluated once on the test clips. The
results go to `<output_dir>/results.json` and a printed table; each head's
model directory is `<output_dir>/<head>`, ready for `classifier.evaluate
--split=test` and `classifier.predict`.

This is the same as running, per head:

  python -m classifier.train --train_records=... --label_map=... \
    --validation_split=0.1 --test_split=0.1 --head=HEAD --model_dir=...
"""

import os

from absl import app
from absl import flags

from classifier import model_dir as model_dir_lib
from classifier import train as train_lib

flags.DEFINE_multi_string('records', None, 'TFRecord glob(s) of AudioSet '
                          'embeddings (balanced train).')
flags.DEFINE_string('label_map', None, 'class_labels_indices.csv.')
flags.DEFINE_string('output_dir', None, 'Where models and results go.')
flags.DEFINE_list('heads', ['mean_mlp', 'attention'], 'Heads to compare.')
flags.DEFINE_float('validation_split', 0.1, 'Validation fraction.')
flags.DEFINE_float('test_split', 0.1, 'Test fraction.')
flags.DEFINE_integer('split_seed', 0, 'Seed of the hashed split.')
flags.mark_flags_as_required(['records', 'label_map', 'output_dir'])
FLAGS = flags.FLAGS

_COLUMNS = ('mAP', 'lwlrap', 'AUC', 'd_prime', 'micro_f1', 'macro_f1')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {argv[1:]}')
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  results = {}
  for head in FLAGS.heads:
    metrics = train_lib.train(
        label_map=FLAGS.label_map,
        model_dir=os.path.join(FLAGS.output_dir, head),
        train_records=FLAGS.records, validation_split=FLAGS.validation_split,
        test_split=FLAGS.test_split, split_seed=FLAGS.split_seed, head=head)
    results[head] = {
        'validation_mAP': metrics['validation']['mAP'],
        'test': {key: metrics['test'][key] for key in _COLUMNS},
        'train_seconds': metrics['train_seconds'],
        'total_seconds': metrics['total_seconds'],
        'best_epoch': metrics['best_epoch'],
        'num_train_clips': metrics['num_train_clips'],
        'num_test_clips': metrics['num_test_clips'],
    }
  model_dir_lib.write_json(os.path.join(FLAGS.output_dir, 'results.json'),
                           results)
  print('head       val mAP  ' + '  '.join(f'{c:>8}' for c in _COLUMNS) +
        '  train s')
  for head, r in results.items():
    print(f'{head:<10} {r["validation_mAP"]:7.4f}  ' +
          '  '.join(f'{r["test"][c]:8.4f}' for c in _COLUMNS) +
          f'  {r["train_seconds"]:7.0f}')
  print(f'(test columns: {next(iter(results.values()))["num_test_clips"]} '
        'held-out clips)')


if __name__ == '__main__':
  app.run(main)
