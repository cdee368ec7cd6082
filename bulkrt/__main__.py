"""`python -m bulkrt` is the `bulkrt` console script."""

from bulkrt.cli import main

if __name__ == "__main__":
    main()
