"""Optional dependencies: imported where a feature needs them, with one clear error.

The core (`pip install -e .`) installs and imports without them; a feature
that needs one calls `require(...)` and the user reads which extra to install.
"""

import importlib


class MissingExtraError(ImportError):
  """A feature needs an optional dependency that is not installed."""


def require(module: str, extra: str, feature: str):
  """Imports `module`, or raises `MissingExtraError` naming the extra to install.

  Args:
    module: the module to import ('apache_beam').
    extra: the project extra that installs it ('beam').
    feature: what needs it, for the message ('the Beam pipeline').

  Returns:
    The imported module.
  """
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise MissingExtraError(
        f'{feature} needs the optional package {module.split(".")[0]!r}, which is '
        f'not installed ({e}); install it with pip install -e ".[{extra}]" in '
        f'this repository') from e
