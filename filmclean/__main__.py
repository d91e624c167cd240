"""``python -m filmclean``: the same command line as the ``filmclean`` console script."""

from filmclean.cli import main

if __name__ == "__main__":
    main()
