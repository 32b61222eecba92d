"""`python -m stochlift.apps.cli ...` is the `stochlift` command."""

from stochlift.apps.cli import main

if __name__ == "__main__":
    main()
