"""`python -m stochlift.cli ...` (and `torchrun ... -m stochlift.cli ...`) as before the CLI moved to
stochlift.apps.cli; `python -m stochlift` is the same."""

from stochlift.apps.cli import cli, main

__all__ = ["cli", "main"]

if __name__ == "__main__":
    main()
