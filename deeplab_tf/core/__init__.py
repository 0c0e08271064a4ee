"""The lowest layer, imported by every other one and importing none of them:
the error base class (``errors``), the original's resize kernels and size
arithmetic (``geometry``) and progress lines (``progress``)."""
