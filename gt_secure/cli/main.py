"""gt-secure: private LLM adapters from DP TinyLM updates, with a verifiable privacy ledger.

Exit codes: 0 pass, 1 a check failed (ledger verification, privacy violation found, refused
protocol), 2 usage or input error (one line naming the fix), 3 internal error (--debug
shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from gt_secure import __version__

COMMAND_MODULES = ("demo", "pretrain", "provider", "ledger", "audit", "protocol", "deploy",
                   "bench", "organization")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line naming the fix (exit 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message> (see <prog> --help)`` and exit 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``gt-secure`` parser; role modules register their commands (no heavy imports)."""
    parser = Parser(prog="gt-secure", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gt-secure {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and third-party warnings")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"gt_secure.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"gt_secure.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _set_threads() -> None:
    """One intra-op thread by default: these models are small and a 2-core machine shared with
    Flower actors loses far more to OpenMP spin-waiting than it gains (GT_SECURE_THREADS=n).

    Only when torch is needed: commands that do not set ``needs_torch`` never import it."""
    import torch

    torch.set_num_threads(int(os.environ.get("GT_SECURE_THREADS", "1")))


class _NoDeprecationNotice(logging.Filter):
    """Drops Flower's "DEPRECATED FEATURE" log records (e.g. for ``run_simulation``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "DEPRECATED FEATURE" not in str(record.msg)


def quiet_third_party() -> None:
    """Hide deprecation/future warnings raised by third-party code (ours still show), Flower's
    deprecation notices and Hugging Face progress bars: CLI output only, not tests."""
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!gt_secure)")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    flwr_logger = logging.getLogger("flwr")
    if not any(isinstance(f, _NoDeprecationNotice) for f in flwr_logger.filters):
        flwr_logger.addFilter(_NoDeprecationNotice())


def _fail(code: int, message: str) -> int:
    print(message, file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """Run the parsed command, mapping errors to exit codes 2 (input) and 3 (internal)."""
    from gt_secure.errors import GtSecureError

    try:
        if getattr(args, "check", None) is not None:
            args.check(args)  # input checks first: a typo fails in well under a second
        if getattr(args, "needs_torch", True):
            _set_threads()
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    except (GtSecureError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
            PermissionError, FileExistsError) as err:
        if args.debug:
            raise
        return _fail(EXIT_USAGE, f"error: {_one_line(err)}")
    except Exception as err:  # noqa: BLE001 - the CLI boundary: one line, exit 3
        if args.debug:
            raise
        return _fail(EXIT_INTERNAL, f"internal error: {type(err).__name__}: {_one_line(err)} "
                     "(rerun with gt-secure --debug for the traceback)")


def _one_line(err: BaseException, limit: int = 500) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None:
        text = f"{err.strerror or text}: {err.filename}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gt-secure``; returns the exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args: Any = build_parser().parse_args(argv)
    if not args.debug:
        quiet_third_party()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
