"""Command line: ``python -m mirrorlib recover|book|finetune ...``."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit status 2, as the
    commands' own errors are (argparse prints the whole usage first); its subcommands'
    parsers are of the same class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    from mirrorlib import __version__, book, recovery_cli

    parser = OneLineParser(
        prog="python -m mirrorlib",
        description="mirrorlib: synaptic geometry, mirror descent and geometry recovery.",
    )
    parser.add_argument("--version", action="version", version=f"mirrorlib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    recovery_cli.add_arguments(
        sub.add_parser(
            "recover",
            help="recover the geometry of plasticity from weights before and after learning",
            description=recovery_cli.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    book.add_arguments(
        sub.add_parser(
            "book",
            help="execute every chapter and build the HTML book",
            description=book.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    sub.add_parser(
        "launch-cells",
        help="rewrite every chapter's Colab install cell from _config.yml's repository",
        description="Rewrite the first cell of every chapter (book/*.md and its paired .ipynb) "
        "from repository.url and repository.branch in ./_config.yml; a fork edits those two "
        "keys and runs this.",
    )
    from mirrorlib import finetune_cli

    finetune_cli.add_arguments(
        sub.add_parser(
            "finetune",
            help="run (a slice of) the resumable deep-network finetuning sweep",
            description=finetune_cli.COMMAND_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    A reader that closes the output early (``... | head``) ends the command quietly with the
    status of a process killed by SIGPIPE, 141, as other command-line tools do."""
    try:
        status = _run(_build_parser().parse_args(argv))
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # Python would report the broken pipe again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _run(args: argparse.Namespace) -> int:
    if args.command == "recover":
        from mirrorlib import recovery_cli

        return recovery_cli.main(args)
    if args.command == "finetune":
        from mirrorlib import finetune_cli

        return finetune_cli.main(args)
    if args.command == "launch-cells":
        from mirrorlib.launch import sync_install_cells

        for path in sync_install_cells("."):
            print(f"rewrote {path}")
        return 0
    from mirrorlib import book

    return book.main(args)


if __name__ == "__main__":
    sys.exit(main())
