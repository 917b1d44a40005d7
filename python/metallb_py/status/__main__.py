"""`python -m metallb_py.status ...`: the same command as `metallb-py status ...`."""

from __future__ import annotations

import argparse
import sys

from metallb_py.status import register, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metallb-py")
    register(parser.add_subparsers(required=True))
    return run(parser.parse_args(["status", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
