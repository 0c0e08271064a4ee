"""One base class for every error deeplab_tf raises about its input.

Each module keeps its own precise class (``InputError``, ``OptionsError``,
...), which also derives from the built-in it always was (``ValueError``
mostly), so existing ``except ValueError`` keeps working; a script catches
``DeeplabError`` once and prints the message instead of a traceback.
"""


class DeeplabError(Exception):
  """Bad input, flags, files or checkpoints: the message says which and why."""
