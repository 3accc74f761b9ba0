"""The ``o2l`` command line: option parsing only; the work happens in ``o2l_tf``."""
