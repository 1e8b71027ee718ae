r"""Writes the reference FAD's sanity-check test set as 16 kHz mono int16 WAVs.

  python -m tools.fad_test_set DIR [--seed 0]
  python -m tools.fad --background DIR/background --eval DIR/test1
  python -m tools.fad --background DIR/background --eval DIR/test2

DIR/background: 10 sines, 100 to 1,000 Hz every 100 Hz, 6 s, full scale.
DIR/test1, DIR/test2: 100, 300, 500, 700 and 900 Hz with Gaussian noise of
standard deviation 1e-4 (test1) and 1e-5 (test2) times the peak, drawn with
--seed. Each file is written atomically; an existing set is overwritten.

Exit status: 0 written; 2 usage error or the folder cannot be written (one
line on stderr).
"""

from absl import app
from absl import flags
from absl import logging

from vggish import cli
from vggish.analysis import fad_input

_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the noise of test1 and test2.')


def main(argv):
  if len(argv) != 2:
    raise ValueError('give one DIR to write the test set into')
  written = fad_input.write_reference_test_set(argv[1], seed=_SEED.value)
  logging.info('wrote %d files under %s (background, test1, test2)', len(written), argv[1])
  return 0


if __name__ == '__main__':
  app.run(cli.exit_on_user_error(main), flags_parser=cli.parse_flags)
