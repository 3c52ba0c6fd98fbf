"""``agan`` command line: argument parsing only; each subcommand lives in its own module here
(``agan/cli/<name>.py`` with ``register(subparsers)``) and delegates to the library."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand modules, in the order ``agan --help`` lists them
COMMANDS = ["info", "train", "eval", "derain", "synth", "ablate", "bench", "tune"]


def apply_timing_args(args: argparse.Namespace) -> None:
    """--repeats (>= 1) and --threads of the timing commands (bench, tune)."""
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agan",
        description="Attentive GAN for raindrop removal (Qian et al., CVPR 2018): "
                    "synthesise data, train, evaluate, derain, benchmark.",
    )
    from agan import __version__

    parser.add_argument("--version", action="version", version=f"agan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"agan.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("agan: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError, KeyError) as e:
        # user-facing errors: one clear line, no traceback (AGAN_DEBUG=1 shows it)
        import os

        if os.environ.get("AGAN_DEBUG"):
            raise
        msg = str(e).strip("'\"") if isinstance(e, KeyError) else str(e)
        print(f"agan {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
