"""The pure core: what an item is, what an answer means, which item goes next and when.

Everything here is a function of its arguments: no network, no event loop, no clock (every
call takes ``now``), no files. It may import only `bulkrt.errors`, `bulkrt.redaction` and other
core modules; `tests/test_layering.py` checks that importing any of it loads no I/O library.
"""
