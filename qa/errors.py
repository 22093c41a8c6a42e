"""Every error qa reports, each kind with the one exit code it gives in every command (see docs/robustness.md).

The index side keeps its own exceptions (index/ never imports qa); `exit_code_for` maps those too, so a failure
exits the same way from `qa ask`, `qa index`, `qa eval` and `qa chat`.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1  # the run failed, in whole or in part: nothing to search, index unwritable, a batch line failed,
#                  the eval gate missed, an unexpected error
EXIT_USAGE = 2  # the command line is wrong: bad option or setting, empty question, missing path, bad gold file
EXIT_INTERRUPTED = 130  # ctrl-c


class QAError(Exception):
    """A problem the user can fix; the message is one line. Run-time failures exit 1."""

    exit_code = EXIT_RUNTIME


class UsageError(QAError):
    """Bad arguments, options, settings or question: exit 2."""

    exit_code = EXIT_USAGE


class CorpusError(UsageError):
    """A corpus path given cannot be read (missing, not a file or folder): exit 2."""


class EmptyCorpusError(QAError):
    """The corpus holds no indexable text, so there is nothing to search: exit 1."""


class IndexWriteError(QAError):
    """The index folder cannot be written: exit 1."""


class BackendError(UsageError):
    """The search backend chosen (a Milvus server) cannot be reached or refused a request: exit 2."""


class GoldError(UsageError):
    """The gold file is malformed or does not match the corpus; the message names the line: exit 2."""


class PartialFailure(QAError):
    """The command finished but some of its work failed (each failure already reported): exit 1."""


def exit_code_for(exc: BaseException) -> int:
    """The exit code of any exception that reaches the command line, qa's or the index's."""
    from index.backend import BackendUnavailable
    from index.ingest import IngestError

    if isinstance(exc, QAError):
        return exc.exit_code
    if isinstance(exc, (IngestError, BackendUnavailable)):
        return UsageError.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_RUNTIME  # IndexCorrupt, OSError, anything unexpected
