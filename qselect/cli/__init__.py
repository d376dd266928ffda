"""The ``qselect`` command line: demo, select, compare, evaluate, bench, hardware, ensemble.

``main(argv)`` parses the command, merges ``--config`` TOML values (flag >
config > default), and runs it. Any ``QSelectError`` becomes one line on
stderr, ``qselect: error: <what is wrong and how to fix it>``, and exit code 2;
the traceback is shown only with ``--debug``. Anything else is a bug and keeps
its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from ..app.console import setup_logging
from ..errors import QSelectError
from .common import option_specs

#: qselect.cli modules that each provide register(subparsers); the parser of a
#: command holds only the option groups that command uses
COMMAND_MODULES = ("demo", "select", "compare", "evaluate", "bench", "hardware", "ensemble")

log = logging.getLogger("qselect")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as QSelectError (one line, exit 2).

    Option prefixes are not expanded (``allow_abbrev=False``): ``compare --seed 5``
    must not silently mean ``--seeds 5``.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise QSelectError(f"{message}; see '{self.prog} --help'")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``qselect`` argument parser.

    Returns
    -------
    parser : argparse.ArgumentParser
    commands : dict of str -> argparse.ArgumentParser
        Each command's parser (``"hardware submit"`` for group verbs), its
        defaults moved out of argparse so flag > config > default.
    """
    from .. import __version__

    parser = _Parser(prog="qselect", description="Quantum-classical neuron selection: local QUBO/QAOA "
                     "subnetwork problems and a PyTorch pruning pipeline.")
    parser.add_argument("--version", action="version", version=f"qselect {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    commands = {}
    for name, p in sub.choices.items():
        verbs = _verbs(p)
        if verbs is None:
            commands[name] = p
        else:  # a command group (``qselect hardware submit``): each verb is a command of its own
            commands.update({f"{name} {verb}": vp for verb, vp in verbs.choices.items()})
    for p in commands.values():
        option_specs(p)  # moves every default out of argparse (flag > config > default)
    return parser, commands


def _verbs(parser):
    for action in parser._actions:  # argparse has no public accessor for subparsers
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def main(argv=None) -> int:
    """Run the ``qselect`` command line.

    Parameters
    ----------
    argv : list of str or None
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 on success, 2 on a ``QSelectError`` (one line on
        stderr; the traceback only with ``--debug``), 130 on Ctrl-C.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser, commands = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            raise QSelectError(f"no command given; choose one of {', '.join(commands)}")
        command = args.command
        if getattr(args, "verb", "") is None:
            raise QSelectError(f"'qselect {command}' needs a verb; see 'qselect {command} --help'")
        if getattr(args, "verb", None):
            command = f"{command} {args.verb}"
        schema = option_specs(commands[command])
        config = {}
        config_path = getattr(args, "config", None)
        if config_path is not None:
            from ..config import load_config

            known = {k for p in commands.values() for k in option_specs(p)}
            config = load_config(config_path, schema, command, commands, known)
        from ..config import resolve

        explicit = {k: v for k, v in vars(args).items() if k in schema}
        cfg = resolve(schema, config, explicit)
        debug = debug or bool(cfg.get("debug"))
        setup_logging(bool(cfg.get("quiet")), bool(cfg.get("verbose")))
        ns = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in schema}, **cfg)
        ns.command, ns.func, ns.config = command, args.func, config_path
        # `given`: options set by flag or config file (commands with presets, e.g. demo
        # --size, fill in only the rest)
        ns.resolved, ns.argv, ns.given = cfg, argv, set(config) | set(explicit)
        rc = args.func(dict(cfg), argv=argv, given=ns.given, extra=getattr(args, "extra", None))
        return int(rc or 0)
    except QSelectError as exc:
        if debug:
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"qselect: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qselect: interrupted; files already written are complete, rerun to finish", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser"]
