"""Helpers for the server tests: start and stop `vitals serve`, token
configs, Flight SQL commands spoken with plain pyarrow.flight, and the grpc
stubs generated from proto/ at test time."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl

from conftest import ROOT, run, vitals_bin


def token_entry(name, role, secret, org_id=None, expires=None):
    sha = run("hash-token", secret).stdout.strip()
    lines = ["[[tokens]]", f'name = "{name}"', f'role = "{role}"', f'sha256 = "{sha}"']
    if org_id:
        lines.append(f'org_id = "{org_id}"')
    if expires:
        lines.append(f'expires = "{expires}"')
    return "\n".join(lines) + "\n\n"


def role_tokens(csm, org_id):
    """One token of each role: root/admin-secret, ana/analyst-secret, the CSM
    `csm`/csm-secret, and acme/account-secret for account `org_id`."""
    return (
        token_entry("root", "admin", "admin-secret")
        + token_entry("ana", "analyst", "analyst-secret")
        + token_entry(csm, "csm", "csm-secret")
        + token_entry("acme", "account", "account-secret", org_id=org_id)
    )


class Server:
    """A `vitals serve` process on 127.0.0.1 with a free port."""

    def __init__(self, lake, config, *flags, env=None, tls_root=None):
        full_env = dict(os.environ)
        full_env["VITALS_LOG"] = "info"
        full_env.update(env or {})
        self.log_path = Path(str(config) + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [vitals_bin(), "serve", "--lake", str(lake), "--config", str(config), "--addr", "127.0.0.1:0", *map(str, flags)],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=full_env,
        )
        line = self.proc.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"vitals serve did not start: {line!r}; log: {self.log_path.read_text()}")
        self.port = int(m.group(1))
        self.uri = f"grpc://127.0.0.1:{self.port}"
        self.target = f"127.0.0.1:{self.port}"
        probe = (lambda: fl.FlightClient(f"grpc+tls://127.0.0.1:{self.port}", tls_root_certs=tls_root)) if tls_root else (lambda: fl.FlightClient(self.uri))
        # Wait until it answers (the engine opens after the port is bound).
        deadline = time.time() + 120
        while True:
            try:
                probe().list_actions()
            except fl.FlightUnauthenticatedError:
                break
            except Exception:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"vitals serve does not answer; log: {self.log_path.read_text()}")
                time.sleep(0.2)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=30):
        """SIGTERM, then wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        self.log.close()
        return self.proc.returncode


# --- Flight SQL commands as protobuf bytes (pyarrow speaks Flight, not Flight SQL) ---

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(number, payload):
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _any(type_name, payload):
    url = f"type.googleapis.com/arrow.flight.protocol.sql.{type_name}".encode()
    return _field_bytes(1, url) + _field_bytes(2, payload)


def command_descriptor(type_name, payload=b""):
    """A FlightDescriptor for any Flight SQL command message."""
    return fl.FlightDescriptor.for_command(_any(type_name, payload))


def statement_descriptor(sql):
    """A FlightDescriptor for CommandStatementQuery{query}."""
    return fl.FlightDescriptor.for_command(_any("CommandStatementQuery", _field_bytes(1, sql.encode())))


def cancel_action(info, kind="CancelFlightInfo"):
    """The action that cancels a FlightInfo's query: Flight's CancelFlightInfo,
    or Flight SQL's (older) CancelQuery."""
    if kind == "CancelQuery":
        return fl.Action("CancelQuery", _any("ActionCancelQueryRequest", _field_bytes(1, info.serialize())))
    return fl.Action("CancelFlightInfo", _field_bytes(1, info.serialize()))


def bearer(secret):
    return fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {secret}".encode())])


def flight_query(uri, secret, sql):
    """Runs SQL over Flight SQL with pyarrow; returns (advertised schema, table)."""
    client = fl.FlightClient(uri)
    opts = bearer(secret)
    info = client.get_flight_info(statement_descriptor(sql), opts)
    reader = client.do_get(info.endpoints[0].ticket, opts)
    table = reader.read_all()
    return info.schema, table


def flight_error(uri, sql, secret="analyst-secret"):
    """The error a query over Flight SQL ends with, or None when it answers."""
    try:
        flight_query(uri, secret, sql)
        return None
    except (fl.FlightError, pa.ArrowException) as e:  # INVALID_ARGUMENT arrives as ArrowInvalid
        return e


def drain(reader):
    """Reads a stream batch by batch. (read_all turns a CANCELLED status into
    a simulated Ctrl-C in the main thread, which a thread must not do.)"""
    batches = []
    while True:
        try:
            batches.append(reader.read_chunk().data)
        except StopIteration:
            return batches


class Background(threading.Thread):
    """Runs a callable in a thread and keeps its result or exception."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn = fn
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self.fn()
        except Exception as e:  # noqa: BLE001 - the test inspects it
            self.error = e


_stubs = None


def stubs(tmp_dir):
    """reports_pb2 and reports_pb2_grpc generated from proto/ with grpcio-tools."""
    global _stubs
    if _stubs is None:
        from grpc_tools import protoc

        out = Path(tmp_dir)
        out.mkdir(parents=True, exist_ok=True)
        code = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}", f"--grpc_python_out={out}", "vitals/v1/reports.proto"])
        assert code == 0, "protoc failed on proto/vitals/v1/reports.proto"
        sys.path.insert(0, str(out))
        from vitals.v1 import reports_pb2, reports_pb2_grpc  # noqa: E402

        _stubs = (reports_pb2, reports_pb2_grpc)
    return _stubs
