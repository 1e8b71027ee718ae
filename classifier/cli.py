"""What the classifier CLIs share: user mistakes end in one line, not a traceback.

A wrong path, a label map that does not fit the records, a model directory
without a model: each raises `ValueError` or `OSError` (`FileNotFoundError`...)
with a message saying what to do. `run(main)` prints that message as one
`error:` line on stderr and exits with `EXIT_USAGE`; anything else is a bug
and keeps its traceback.
"""

import functools
import sys

EXIT_USAGE = 2


def exit_on_user_error(main):
  """Wraps an absl `main(argv)`: ValueError/OSError -> one line, exit status 2."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except (ValueError, OSError) as e:
      print(f'error: {" ".join(str(e).split())}', file=sys.stderr)
      return EXIT_USAGE

  return wrapped


def run(main, define_flags):
  """Defines the flags and runs `main` under absl with user errors caught."""
  from absl import app  # pylint: disable=import-outside-toplevel
  define_flags()
  app.run(exit_on_user_error(main))
