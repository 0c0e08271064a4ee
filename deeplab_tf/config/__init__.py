"""The script edge: the original flags, defined once, turned into settings.

``model_flags`` defines the original common.py model flags (and the
eval / vis / resize / CRF flag groups the scripts share) and turns their
values into the library's plain objects: the options of the model family
``--meta_architecture`` selects, a checkpoint's options by the one rule of
``checkpoints.model_options``, a training task's own flags. Only the commands
at the package top import this package; the library never reads flags.
"""
