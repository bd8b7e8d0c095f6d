"""One exception tree for the whole package.

Every error a user can cause or meet derives from :class:`MisuanError`, carries a one-line message
that says what to fix, and maps to a stable process exit code (``EXIT_CODES``) used by the CLI.
Nothing here imports the rest of the package, so every layer may raise these.
"""

from __future__ import annotations


class MisuanError(Exception):
    """Base of every error misuan raises on purpose."""

    exit_code = 1
    help = "an unexpected misuan error; rerun with --debug and report it"


# --- configuration -------------------------------------------------------------------------------
class ConfigError(MisuanError):
    exit_code = 2
    help = "the job spec, node config or command-line arguments are invalid"


class JobSpecError(ConfigError):
    help = "the job spec is invalid: fix the field named in the message"


# --- data ----------------------------------------------------------------------------------------
class DataError(MisuanError):
    exit_code = 3
    help = "an input dataset is unusable: fix the file or column named in the message"


class MissingColumnError(DataError):
    pass


class DuplicateIdError(DataError):
    pass


class EmptyIdError(DataError):
    pass


class NoOverlapError(DataError):
    help = "the parties share no customers (empty intersection): check the ID columns and normalisation"


# --- network -------------------------------------------------------------------------------------
class NetworkError(MisuanError):
    exit_code = 4
    help = "a peer could not be reached or the connection broke: check addresses, ports and that the peer runs"


class PeerUnreachableError(NetworkError):
    pass


class PeerDisconnectedError(NetworkError):
    help = "a peer disconnected in the middle of a job: restart the job on every party"


class PeerTimeoutError(NetworkError):
    help = "a peer did not answer in time: check it is running the same job, or raise the timeout"


class TooFewPartiesError(NetworkError):
    help = (
        "secure aggregation lost so many data parties that fewer than its threshold remain: the sum "
        "cannot be recovered (nor would it hide the inputs left); rerun with the parties up, or a lower threshold"
    )


class PartyDroppedError(NetworkError):
    help = (
        "a data party dropped out in the middle of a horizontal fit: later rounds would sum other parties "
        "than earlier ones (and their difference would tell one party's share), so the fit stops; rerun it"
    )


class AuthenticationError(NetworkError):
    exit_code = 5
    help = "mutual TLS failed: the peer's certificate is not signed by the CA in your config, or names another party"


# --- protocol ------------------------------------------------------------------------------------
class ProtocolError(MisuanError):
    exit_code = 6
    help = "a peer sent a message that breaks the protocol: check both parties run the same misuan version and job"


class ModelMismatchError(ProtocolError):
    """Two serving nodes run different versions of a model (their pins differ): serving is refused."""


class MalformedMessageError(ProtocolError):
    pass


class UnexpectedMessageError(ProtocolError):
    pass


class ProtocolVersionError(ProtocolError):
    help = "the peers run different versions of a protocol: upgrade the older node so both match"


class InconsistentPeerError(ProtocolError):
    """A peer's message is well formed but contradicts what this party knows (a consistency check failed).

    ``peer`` and ``check`` name who sent it and which check failed (e.g. ``"positives total"``),
    ``subject`` what it was about (a feature); the message says all three. Such checks catch a
    peer's bugs and crude forgeries; they are not security against a malicious peer.
    """

    help = "a peer's values contradict this party's own data (a consistency check failed): the job stopped"

    def __init__(self, message: str, *, peer: str = "", check: str = "", subject: str = "") -> None:
        super().__init__(message)
        self.peer = peer
        self.check = check
        self.subject = subject


# --- cryptography --------------------------------------------------------------------------------
class CryptoError(MisuanError):
    exit_code = 7
    help = "a cryptographic operation failed: check keys and parameters"


class EncodingOverflowError(CryptoError):
    help = "a value does not fit the fixed-point encoding: scale the input or raise the precision"


# --- audit ---------------------------------------------------------------------------------------
class LedgerError(MisuanError):
    exit_code = 8
    help = "the disclosure ledger is unreadable or has been tampered with"


class LedgerTamperedError(LedgerError):
    pass


# --- jobs ----------------------------------------------------------------------------------------
class JobError(MisuanError):
    exit_code = 9
    help = "a job step failed: see the message; finished steps are kept and the job can be resumed"


class PeerAwaitingApprovalError(NetworkError):
    """A peer's node holds the job until its operator approves it (a node yields its run slot on this)."""

    exit_code = 4
    help = "a peer's operator has not approved the job yet: ask them to (misuan node approve), then rerun"


class JobRefusedError(JobError):
    """A party's operator refused the job (or this party's did): nothing ran; the reason is in the message."""

    exit_code = 11
    help = "an operator refused the job (misuan node refuse): nothing ran; see the reason"


# --- lending checks ------------------------------------------------------------------------------
class ComplianceViolation(MisuanError):
    """Not a failure of misuan: a lending check ran and found a violation (``misuan lending caps``/``copy``
    print their report and exit with this code, so a CI job for loan terms or marketing copy fails)."""

    exit_code = 10
    help = "a lending check found a violation (a cap exceeded, or a finding in marketing copy): see the report"


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: MisuanError.help,
    2: ConfigError.help,
    3: DataError.help,
    4: NetworkError.help,
    5: AuthenticationError.help,
    6: ProtocolError.help,
    7: CryptoError.help,
    8: LedgerError.help,
    9: JobError.help,
    10: ComplianceViolation.help,
    11: JobRefusedError.help,
    130: "interrupted by the user (Ctrl-C)",
}
