"""The `camhub` command: init, run, demo, check-config, decrypt, passwd, audit, repair."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import secrets
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from hub import __version__, repair, tls, vault
from hub.audit import AuditKind, AuditLog
from hub.config import (
    DEMO_PORT,
    Config,
    ConfigError,
    OffsiteSettings,
    StorageSettings,
    default_config,
    load_config,
    warnings,
)
from hub.daemon import (
    DataPaths,
    Hub,
    HubNotInitialised,
    IndexUnusable,
    KeyFileError,
    load_keyfile,
    read_keyfile,
    run_until_signalled,
)
from hub.fsutil import DirectoryBusy, DirectoryLock, write_private
from hub.logs import limit_repeats
from hub.offsite import naming, restore
from hub.offsite.bucket import Bucket, BucketError
from hub.offsite.queue import OffsiteQueue
from hub.offsite.queue import Summary as OffsiteSummary
from hub.store import DamagedIndex, Index, SchemaError, is_damage

log = logging.getLogger("hub")

PASSWORD_TRIES = 5  # at the terminal, `init` and `passwd` ask again this many times


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "log_level", None) or "info")
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(f"camhub: invalid config\n{exc}", file=sys.stderr)
    except IndexUnusable as exc:
        print(
            f"camhub: {exc}; not started, nothing deleted: run "
            f"`camhub repair {_where_given(args, exc.data_dir)}` to rebuild the index "
            "from the sealed files",
            file=sys.stderr,
        )
    except DamagedIndex as exc:
        print(f"camhub: {exc}; `camhub repair` sets it aside and rebuilds it", file=sys.stderr)
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        print(
            f"camhub: the index is damaged ({exc}); `camhub repair` sets it aside and rebuilds it",
            file=sys.stderr,
        )
    except (
        CommandError,
        DirectoryBusy,
        HubNotInitialised,
        KeyFileError,
        vault.VaultError,
        SchemaError,
    ) as exc:
        print(f"camhub: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("camhub: interrupted", file=sys.stderr)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="camhub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"camhub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = command("init", cmd_init, "create the data directory and the owner's keys")
    _where(p)
    p.add_argument("--password-file", type=Path, help="read the new password from this file")

    p = command("run", cmd_run, "run the hub with a config file")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    p = command("demo", cmd_demo, "run a throwaway hub with the built-in camera")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--data-dir", type=Path, help="keep the demo's data here instead of a temp dir")
    p.add_argument(
        "--listen",
        default=f"127.0.0.1:{DEMO_PORT}",
        help="host:port to serve the page on, e.g. 0.0.0.0:8080 to open it from another "
        f"machine on the LAN (plain HTTP; default 127.0.0.1:{DEMO_PORT})",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    p = command("check-config", cmd_check_config, "validate a config file")
    p.add_argument("config", type=Path)

    p = command("decrypt", cmd_decrypt, "open a sealed segment or snapshot with the password")
    p.add_argument("file", type=Path, help="a .seg or .snap file from the data directory")
    p.add_argument("--out", required=True, help="where to write the plaintext ('-' for stdout)")
    p.add_argument("--keys", type=Path, help="the owner key file (default: found above FILE)")
    p.add_argument("--password-file", type=Path)
    p.add_argument(
        "--recovery-code", action="store_true", help="unlock with the recovery code instead"
    )
    p.add_argument(
        "--partial",
        action="store_true",
        help="accept a segment cut short by a crash (the hub's index marks these as recovered)",
    )

    p = command("audit", cmd_audit, "show or verify the access log")
    _where(p)
    p.add_argument("action", choices=["verify", "show"], help="verify the hash chain, or list")
    p.add_argument("--limit", type=int, default=50, help="records to show (newest first)")
    p.add_argument(
        "--unlock",
        action="store_true",
        help="ask for the password, to check the seal's MAC too (verify)",
    )
    p.add_argument("--password-file", type=Path, help="with --unlock: read the password here")

    p = command(
        "repair",
        cmd_repair,
        "rebuild the index from the sealed files (with the hub stopped); deletes nothing",
    )
    _where(p)

    p = command(
        "restore",
        cmd_restore,
        "rebuild an empty data directory from the off-site copy (or --list what it holds)",
    )
    p.add_argument("--config", type=Path, required=True, help="with [offsite] and hub.data_dir")
    p.add_argument("--list", action="store_true", help="only list what the bucket holds")
    p.add_argument("--keys", type=Path, help="a copy of keys.json (else the bucket's copy)")
    p.add_argument("--hub", help="which hub's copy, when several share the prefix")
    p.add_argument("--since", type=_when_arg, help="only footage from this time (ISO 8601)")
    p.add_argument("--until", type=_when_arg, help="only footage before this time (ISO 8601)")
    p.add_argument("--password-file", type=Path, help="read the password (or code) here")
    p.add_argument(
        "--recovery-code", action="store_true", help="unlock with the recovery code instead"
    )
    p.add_argument(
        "--new-password-file",
        type=Path,
        help="the new box's password, when only the recovery code opens the keys",
    )

    p = command("offsite", cmd_offsite, "show how the off-site copy is doing")
    _where(p)
    p.add_argument("action", choices=["status"])

    p = command("passwd", cmd_passwd, "change the owner's password")
    _where(p)
    p.add_argument("--password-file", type=Path, help="read the current password from this file")
    p.add_argument("--new-password-file", type=Path, help="read the new password from this file")
    return parser


def _where(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", type=Path)
    group.add_argument("--data-dir", type=Path)


def _where_given(args: argparse.Namespace, data_dir: Path) -> str:
    """The --config or --data-dir option naming the data directory, as the user gave it."""
    config = getattr(args, "config", None)
    return f"--config {config}" if config is not None else f"--data-dir {data_dir}"


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    limit_repeats()


def _data_paths(args: argparse.Namespace) -> DataPaths:
    if args.data_dir is not None:
        return DataPaths(args.data_dir.resolve())
    return DataPaths(load_config(args.config).hub.data_dir)


# -- secrets ---------------------------------------------------------------------------


def _read_secret_file(path: Path) -> str:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    secret = lines[0] if lines else ""
    if not secret:
        raise CommandError(f"{path} is empty")
    return secret


def _ask(prompt: str, file: Path | None) -> str:
    if file is not None:
        return _read_secret_file(file)
    if not sys.stdin.isatty():
        raise CommandError(f"{prompt.rstrip(': ')}: no terminal to ask on; use a password file")
    return getpass.getpass(prompt)


def _new_password(file: Path | None) -> str:
    """The new password: from the file (refused if too short), or asked at the terminal
    until it is long enough and typed the same twice (PASSWORD_TRIES at most)."""
    if file is not None:
        password = _read_secret_file(file)
        if problem := vault.password_problem(password):
            raise CommandError(problem)
        return password
    for _ in range(PASSWORD_TRIES):
        password = _ask("New owner password: ", None)
        if problem := vault.password_problem(password):
            print(f"camhub: {problem}; try again", file=sys.stderr)
            continue
        if getpass.getpass("Repeat it: ") != password:
            print("camhub: the two passwords differ; try again", file=sys.stderr)
            continue
        return password
    raise CommandError(f"no usable password after {PASSWORD_TRIES} tries; nothing was changed")


# -- commands --------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    paths = _data_paths(args)
    if paths.keys.exists():
        raise CommandError(f"{paths.root} already has owner keys; nothing was changed")
    password = _new_password(args.password_file)
    recovery = init_data_dir(paths, password)
    fingerprint, _ = tls.ensure_certificate(paths.tls_cert, paths.tls_key)
    print(f"camhub: initialised {paths.root}")
    print("TLS certificate SHA-256 fingerprint (check it the first time your browser asks):")
    print(f"    {fingerprint}")
    print("Recovery code (shown only this once; write it down and keep it offline):")
    print(f"    {recovery}")
    print("It opens your footage if you forget the password. Nobody else can recover it.")
    return 0


def init_data_dir(paths: DataPaths, password: str, kdf: vault.KdfParams | None = None) -> str:
    """Create the data directory and owner keys; return the recovery code."""
    paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(paths.root, 0o700)
    keyfile, recovery = vault.create_owner_keys(password, kdf=kdf)
    write_private(paths.keys, keyfile.to_json().encode())
    return recovery


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _setup_logging(args.log_level or config.hub.log_level)
    logging.getLogger().setLevel((args.log_level or config.hub.log_level).upper())
    try:
        hub = Hub(config)
    except KeyFileError as exc:
        raise CommandError(f"not recording: {exc}") from None
    run_until_signalled(hub)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    config: Config = default_config(Path("."), args.listen)  # --listen checked first
    # The hub's info lines (cameras starting...) would bury the password: warnings only.
    logging.getLogger().setLevel((args.log_level or "warning").upper())
    keep = args.data_dir is not None
    root = args.data_dir.resolve() if keep else Path(tempfile.mkdtemp(prefix="camhub-demo-"))
    try:
        paths = DataPaths(root)
        password = None
        if not paths.keys.exists():
            password = secrets.token_urlsafe(12)
            init_data_dir(paths, password)
        config = default_config(root, args.listen)
        print(f"camhub demo: a porch camera (synthetic) recording into {root}", flush=True)
        hub = Hub(config)

        def started() -> None:
            port = hub.web.port if hub.web is not None else _split_port(args.listen)
            print(_demo_banner(config.web.host, port, password), flush=True)

        run_until_signalled(hub, seconds=args.seconds, started=started)
        _print_demo_summary(root, password, keep)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def _split_port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def _demo_banner(host: str, port: int, password: str | None) -> str:
    """What to open and the password, framed, printed once the page is served."""
    if host in ("0.0.0.0", "::"):
        name = socket.gethostname().partition(".")[0]
        where = [
            f"open http://{name}.local:{port}/ from another machine on the LAN",
            f"(or http://<this box's address>:{port}/; `hostname -I` lists them)",
        ]
    else:
        shown = f"[{host}]" if ":" in host else host
        where = [f"open http://{shown}:{port}/"]
    lines = [*where, "someone walks by every ~20 s; press Ctrl-C to stop"]
    if password is not None:
        lines.append(f"owner password: {password}")
    else:
        lines.append("log in with the password this data directory was made with")
    return _framed(lines)


def _framed(lines: list[str]) -> str:
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


def _print_demo_summary(root: Path, password: str | None, kept: bool) -> None:
    index = Index(DataPaths(root).index)
    try:
        events = index.events(limit=1000)
        segments = index.segments(limit=100000)
    finally:
        index.close()
    sealed = sum(s.size or 0 for s in segments)
    lines = [
        f"{len(events)} motion event(s), {len(segments)} sealed segment(s), "
        f"{sealed / 1e6:.1f} MB encrypted at rest",
        f"kept in {root}" if kept else "the demo's data is deleted now",
    ]
    if password is not None:
        lines.append(f"owner password: {password}")
    print(_framed(lines), flush=True)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Problems refuse the config (exit 1); warnings are printed and it passes (exit 0)."""
    config = load_config(args.config)
    for warning in warnings(config):
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    print(f"{args.config}: ok ({len(config.cameras)} camera(s), data in {config.hub.data_dir})")
    if config.offsite is not None:
        o = config.offsite
        print(f"{args.config}: off-site copy of {o.what} to bucket {o.bucket} at {o.endpoint}")
        if o.lock != "off":
            print(f"{args.config}: each copy locked ({o.lock} mode) for {o.keep_days} day(s)")
    return 0


def cmd_decrypt(args: argparse.Namespace) -> int:
    keys_path = args.keys or _find_keys(args.file)
    keyfile = read_keyfile(keys_path)
    if args.recovery_code:
        secret = _ask("Recovery code: ", args.password_file)
        private_key = vault.unlock_with_recovery(keyfile, secret)
    else:
        private_key = vault.unlock(keyfile, _ask("Owner password: ", args.password_file))
    written = _decrypt_to(args.file, private_key, args.out, allow_partial=args.partial)
    if args.out != "-":
        print(f"camhub: wrote {written} bytes to {args.out}", file=sys.stderr)
    return 0


def _decrypt_to(sealed: Path, private_key, out: str, *, allow_partial: bool) -> int:
    """Verify every chunk before writing it; on any failure remove the partial output."""
    try:
        src = sealed.open("rb")
    except OSError as exc:
        raise CommandError(f"cannot read {sealed}: {exc.strerror}") from None
    written = 0
    with src:
        if out == "-":
            for chunk in vault.open_sealed(src, private_key, allow_partial=allow_partial):
                written += sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return written
        target = Path(out)
        try:
            with target.open("wb") as dst:
                for chunk in vault.open_sealed(src, private_key, allow_partial=allow_partial):
                    written += dst.write(chunk)
        except vault.TruncatedFile as exc:
            target.unlink(missing_ok=True)
            raise CommandError(
                f"{sealed}: {exc} (if the hub recovered this segment after a crash, "
                "--partial opens what was sealed before it)"
            ) from None
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    return written


def _find_keys(sealed: Path) -> Path:
    for parent in sealed.resolve().parents:
        candidate = DataPaths(parent).keys
        if candidate.exists():
            return candidate
    raise CommandError(f"no keys.json found above {sealed}; name it with --keys")


def cmd_repair(args: argparse.Namespace) -> int:
    paths = _data_paths(args)
    if not paths.root.is_dir():
        raise CommandError(f"no data directory {paths.root}")
    segment_seconds = (
        load_config(args.config).storage.segment_seconds
        if args.config is not None
        else StorageSettings().segment_seconds
    )
    lock = DirectoryLock(paths.root)
    try:
        report = repair.repair_index(
            paths.root, paths.index, segment_seconds=segment_seconds, now=time.time()
        )
    finally:
        lock.release()
    for line in report.lines():
        print(f"camhub: {line}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    paths = _data_paths(args)
    keyfile = load_keyfile(paths)
    private_key = vault.unlock(keyfile, _ask("Current owner password: ", args.password_file))
    new = _new_password(args.new_password_file)
    write_private(paths.keys, vault.rewrap(keyfile, private_key, new).to_json().encode())
    with Index(paths.index) as index:
        log_ = AuditLog(index)
        log_.record(AuditKind.PASSWORD_CHANGED, "owner at the console")
        log_.seal(private_key)
    print("camhub: password changed (footage keys unchanged; the recovery code still works)")
    if keyfile.version < vault.KEYFILE_VERSION:
        # Safe only now: unlocking proved the public key is the private key's own.
        print(
            f"camhub: {paths.keys} upgraded from version {keyfile.version} to "
            f"{vault.KEYFILE_VERSION}: its public key now carries a check"
        )
    return 0


def _when_arg(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-12-01T22:00)"
        ) from None


def cmd_restore(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.offsite is None:
        raise CommandError(f"{args.config} has no [offsite] table: nothing to restore from")
    settings, paths = config.offsite, DataPaths(config.hub.data_dir)
    if not args.list and paths.root.exists() and any(paths.root.iterdir()):
        raise CommandError(f"{paths.root} is not empty; restore into an empty data directory")
    bucket = Bucket(settings)
    try:
        bucket.check()
        keyfile, tag = _restore_keys(args, bucket, settings.prefix)
        private_key = _unlock(args, keyfile)
        held = restore.read_holdings(bucket, settings.prefix, tag, private_key)
    except BucketError as exc:
        raise CommandError(str(exc)) from None
    held = held.between(args.since, args.until)
    for line in held.summary():
        print(f"camhub: {line}")
    if args.list:
        return 0
    if args.keys is not None:
        keys_json = args.keys.read_bytes()
    else:  # the bucket's copy opens with the recovery code only: give it a password
        keys_json = vault.rewrap(keyfile, private_key, _new_password(args.new_password_file))
        keys_json = keys_json.to_json().encode()
    paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(paths.keys, keys_json)
    lock = DirectoryLock(paths.root)
    try:
        with Index(paths.index) as index:
            queue = OffsiteQueue(paths.index)
            try:
                report = restore.rebuild(
                    paths.root, index, queue, bucket, settings.prefix, tag, held, time.time()
                )
            except BucketError as exc:
                raise CommandError(f"{exc}; run restore again into an empty directory") from None
            finally:
                queue.close()
            AuditLog(index).record(
                AuditKind.RESTORED,
                "owner at the console",
                {
                    "bucket": settings.bucket,
                    "segments": report.segments,
                    "snapshots": report.snapshots,
                    "events": report.events,
                    "missing": len(report.missing),
                    "rejected": len(report.rejected),
                },
            )
    finally:
        lock.release()
    for line in report.lines():
        print(f"camhub: {line}")
    print(f"camhub: {paths.root} is ready: `camhub run --config {args.config}` serves it")
    return 0


def _restore_keys(
    args: argparse.Namespace, bucket: Bucket, prefix: str
) -> tuple[vault.KeyFile, str]:
    """The owner key file (a local copy, else the bucket's) and the hub tag it names."""
    if args.keys is not None:
        keyfile = read_keyfile(args.keys)
        return keyfile, naming.hub_tag(keyfile.public_bytes)
    tags = restore.hub_tags(bucket, prefix)
    if args.hub is not None:
        if args.hub not in tags:
            raise CommandError(f"no hub {args.hub!r} in the bucket (found: {', '.join(tags)})")
        tags = [args.hub]
    if not tags:
        raise CommandError("the bucket holds no camhub copy under this prefix")
    if len(tags) > 1:
        raise CommandError(f"several hubs share this prefix ({', '.join(tags)}): choose with --hub")
    try:
        return restore.key_copy(bucket, prefix, tags[0]), tags[0]
    except vault.VaultError as exc:
        raise CommandError(f"the bucket's copy of the key file is damaged: {exc}") from None


def _unlock(args: argparse.Namespace, keyfile: vault.KeyFile):
    if args.recovery_code:
        return vault.unlock_with_recovery(keyfile, _ask("Recovery code: ", args.password_file))
    if args.keys is None:
        raise CommandError(
            "the bucket's copy of the key file opens with the recovery code only: add "
            "--recovery-code (or give your own copy of keys.json with --keys)"
        )
    return vault.unlock(keyfile, _ask("Owner password: ", args.password_file))


def cmd_offsite(args: argparse.Namespace) -> int:
    paths = _data_paths(args)
    settings = load_config(args.config).offsite if args.config is not None else None
    if args.config is not None and settings is None:
        print(f"camhub: {args.config} has no [offsite] table: nothing is copied off-site")
    if settings is not None and settings.lock != "off":
        print(f"camhub: {_lock_state(settings)}")
    if not paths.index.exists():
        raise CommandError(f"no index in {paths.root}: nothing has been recorded yet")
    with Index(paths.index):  # brings the schema up to date (the queue's tables)
        pass
    queue = OffsiteQueue(paths.index)
    try:
        summary = queue.summary()
    finally:
        queue.close()
    for line in offsite_status_lines(summary, time.time()):
        print(f"camhub: {line}")
    return 0


def _lock_state(settings: OffsiteSettings) -> str:
    """Asks the bucket whether it can hold the locks the config asks for."""
    try:
        Bucket(settings).check_lock()
    except BucketError as exc:
        return f"object lock: NOT in force: {exc}"
    return f"object lock: on ({settings.lock} mode, {settings.keep_days} day(s) per copy)"


def offsite_status_lines(s: OffsiteSummary, now: float) -> list[str]:
    def when(t: float) -> str:
        stamp = datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")
        return f"{stamp} ({max(0, round(now - t))} s ago)"

    lines = [
        f"pending: {s.pending} file(s), {s.urgent_pending} of them event footage"
        + (f"; the oldest queued {when(s.oldest_pending)}" if s.oldest_pending else ""),
        f"off-site: {s.confirmed} object(s), {s.bytes_offsite / 2**20:.1f} MiB",
        "last success: " + (when(s.last_success) if s.last_success else "never"),
    ]
    if s.deletions_pending or s.owner_deleted:
        lines.append(
            f"footage the owner deleted: {s.deletions_pending} object(s) still to delete "
            f"off-site, {s.owner_deleted} deleted"
            + (f", the last {when(s.last_owner_delete)}" if s.last_owner_delete else "")
        )
    if s.deletions_locked_until and s.deletions_locked_until > now:
        until = datetime.fromtimestamp(s.deletions_locked_until).isoformat(
            sep=" ", timespec="seconds"
        )
        lines.append(f"locked in the bucket, the last of them until {until}; each goes then")
    if s.last_error:
        lines.append(f"failing; last error {when(s.last_error_time or now)}: {s.last_error}")
    return lines


def cmd_audit(args: argparse.Namespace) -> int:
    paths = _data_paths(args)
    if not paths.index.exists():
        raise CommandError(f"no index in {paths.root}: nothing has been logged yet")
    private_key = None
    if args.unlock and args.action == "verify":
        keyfile = load_keyfile(paths)
        private_key = vault.unlock(keyfile, _ask("Owner password: ", args.password_file))
    with Index(paths.index) as index:
        log_ = AuditLog(index)
        if args.action == "show":
            for row in log_.recent(0, max(1, args.limit)):
                when = datetime.fromtimestamp(row.time).isoformat(sep=" ", timespec="seconds")
                print(f"{row.seq:>7}  {when}  {row.kind:<26} {row.actor}  {row.detail}")
            return 0
        verdict = log_.verify(private_key)
    if verdict.sealed_through is not None and verdict.sealed_at is not None:
        when = datetime.fromtimestamp(verdict.sealed_at).isoformat(sep=" ", timespec="seconds")
        checked = (
            "its MAC checked with your key"
            if verdict.seal_checked
            else "its MAC unchecked: --unlock checks it"
        )
        print(f"camhub: sealed through record {verdict.sealed_through} at {when} ({checked})")
    elif verdict.ok:
        print("camhub: not sealed yet (the hub seals the log while you are logged in)")
    if verdict.ok:
        print(f"camhub: access log intact: {verdict.records} record(s), every link holds")
        return 0
    print(
        f"camhub: access log BROKEN at record {verdict.first_broken}: {verdict.reason} "
        f"({verdict.records} record(s) before it hold together)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
