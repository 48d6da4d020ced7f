"""The parts of ``bench/run.py``: one module per kind of measurement, plus the Redis peer, the data
sets, the report and the charts. Imported with ``bench/`` on ``sys.path`` (``run.py`` is there)."""
