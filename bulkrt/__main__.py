"""`python -m bulkrt` is the `bulkrt` console script."""

from bulkrt.launch import main

if __name__ == "__main__":
    main()
