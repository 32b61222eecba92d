"""`python -m stochlift ...` is the `stochlift` command (also under torchrun: `torchrun ... -m stochlift train`)."""

from stochlift.apps.cli import main

if __name__ == "__main__":
    main()
