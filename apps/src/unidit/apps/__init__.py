"""The ``unidit`` command and one app per task (configs + entry points)."""
