"""`python -m bulkrt` is the `bulkrt` console script."""

from bulkrt.cli import entry

if __name__ == "__main__":
    entry()
