"""etcd's v3 API for the compatibility suite, built from .proto files at session start.

Stubs are generated with grpc_tools.protoc from the repository's Protos/ (or COMPAT_PROTOS)
into a temporary directory, so the client never depends on our own transport or generated
Swift code. Messages are looked up by their full proto name in the default descriptor pool,
and RPCs are called through generic channel methods (`/etcdserverpb.KV/Range`), so the
suite does not care how the .proto files are laid out on disk.

gogoproto and google.api options (present in etcd's own .proto files) are stripped from the
temporary copy: they change Go code generation only, never the wire format.
"""
from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import grpc
from google.protobuf import descriptor as _descriptor
from google.protobuf import descriptor_pool, message_factory

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "etcdserverpb"

# RPCs that stream; every other method in the services below is unary-unary.
STREAM_STREAM = {"Watch.Watch", "Lease.LeaseKeepAlive"}
UNARY_STREAM = {"Maintenance.Snapshot"}

_GOGO_IMPORT = re.compile(r'^\s*import\s+"(gogoproto/gogo\.proto|google/api/annotations\.proto)";\s*$', re.M)
_GOGO_FILE_OPTION = re.compile(r"^\s*option\s+\(gogoproto\.[^;]*;\s*$", re.M)
_GOGO_FIELD_OPTIONS = re.compile(r"\s*\[\s*\(gogoproto\.[^\]]*\]")
_HTTP_OPTION = re.compile(r"option\s*\(google\.api\.http\)\s*=\s*\{.*?\}\s*;", re.S)


def proto_root() -> Path:
    """The directory holding our .proto files (COMPAT_PROTOS overrides Protos/)."""
    return Path(os.environ.get("COMPAT_PROTOS", REPO_ROOT / "Protos")).resolve()


def _sanitize(text: str) -> str:
    text = _GOGO_IMPORT.sub("", text)
    text = _GOGO_FILE_OPTION.sub("", text)
    text = _GOGO_FIELD_OPTIONS.sub("", text)
    return _HTTP_OPTION.sub("", text)


def generate_stubs(root: Path, out_dir: Path) -> list[str]:
    """Compiles every .proto under `root` into Python modules in `out_dir`; returns module names."""
    from grpc_tools import protoc  # imported lazily: only the suite's session needs it
    import grpc_tools

    if not root.is_dir():
        raise RuntimeError(f"no .proto directory at {root} (set COMPAT_PROTOS)")
    src = out_dir / "proto-src"
    protos = []
    for path in sorted(root.rglob("*.proto")):
        rel = path.relative_to(root)
        if rel.parts[0] == "grpc":
            # grpc.health.v1 is the standard health service, not etcd's API; generating it as a
            # top-level `grpc` package would shadow grpcio itself.
            continue
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(_sanitize(path.read_text()))
        protos.append(str(rel))
    if not protos:
        raise RuntimeError(f"no .proto files under {root}")
    gen = out_dir / "py"
    gen.mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{src}", f"-I{include}", f"--python_out={gen}", *protos]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {root}: {' '.join(args)}")
    modules = []
    for path in sorted(gen.rglob("*_pb2.py")):
        modules.append(".".join(path.relative_to(gen).with_suffix("").parts))
    return modules


class EtcdAPI:
    """Message classes and RPC descriptors of etcd's API, by name."""

    def __init__(self, out_dir: Path | None = None, root: Path | None = None):
        self._tmp = None
        if out_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="compat-stubs-")
            out_dir = Path(self._tmp)
        self.root = root or proto_root()
        modules = generate_stubs(self.root, out_dir)
        sys.path.insert(0, str(out_dir / "py"))
        for name in modules:
            importlib.import_module(name)
        self.pool = descriptor_pool.Default()
        self._classes: dict[str, type] = {}

    def close(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def message_class(self, name: str) -> type:
        """`RangeRequest` (in etcdserverpb) or a full name such as `mvccpb.KeyValue`."""
        full = name if "." in name else f"{PACKAGE}.{name}"
        cls = self._classes.get(full)
        if cls is None:
            cls = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full))
            self._classes[full] = cls
        return cls

    def method(self, rpc: str) -> _descriptor.MethodDescriptor:
        service, method = rpc.split(".")
        return self.pool.FindServiceByName(f"{PACKAGE}.{service}").FindMethodByName(method)

    def request(self, rpc: str, fields=None, **kw):
        """Builds the request message of `rpc` from a dict (see `build`)."""
        cls = message_factory.GetMessageClass(self.method(rpc).input_type)
        return build(cls, {**(fields or {}), **kw})

    def response_class(self, rpc: str) -> type:
        return message_factory.GetMessageClass(self.method(rpc).output_type)

    def callable(self, channel: grpc.Channel, rpc: str):
        service, method = rpc.split(".")
        path = f"/{PACKAGE}.{service}/{method}"
        req = message_factory.GetMessageClass(self.method(rpc).input_type)
        resp = self.response_class(rpc)
        kind = (channel.stream_stream if rpc in STREAM_STREAM
                else channel.unary_stream if rpc in UNARY_STREAM else channel.unary_unary)
        return kind(path, request_serializer=req.SerializeToString,
                    response_deserializer=resp.FromString)


def _to_bytes(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode()


def build(cls, fields: dict):
    """A message of class `cls` from a plain dict.

    Bytes fields accept str (UTF-8) or bytes; enum fields accept names or numbers; message
    fields accept dicts or messages; repeated fields accept lists of any of those.
    """
    msg = cls()
    desc = msg.DESCRIPTOR
    for name, value in fields.items():
        if value is None:
            continue
        field = desc.fields_by_name.get(name)
        if field is None:
            raise KeyError(f"{desc.full_name} has no field {name!r}")
        _set_field(msg, field, value)
    return msg


def _convert_scalar(field, value):
    if field.type == field.TYPE_BYTES:
        return _to_bytes(value)
    if field.type == field.TYPE_ENUM and isinstance(value, str):
        return field.enum_type.values_by_name[value].number
    return value


def _message_value(field, value):
    if isinstance(value, dict):
        return build(message_factory.GetMessageClass(field.message_type), value)
    return value


def _set_field(msg, field, value):
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        repeated = field.label == field.LABEL_REPEATED
    if repeated:
        target = getattr(msg, field.name)
        for item in value:
            if field.type == field.TYPE_MESSAGE:
                target.append(_message_value(field, item))
            else:
                target.append(_convert_scalar(field, item))
    elif field.type == field.TYPE_MESSAGE:
        getattr(msg, field.name).CopyFrom(_message_value(field, value))
    else:
        setattr(msg, field.name, _convert_scalar(field, value))


def show_bytes(value: bytes) -> str:
    """Bytes as readable text: UTF-8 when printable, else a Python bytes literal."""
    try:
        text = value.decode()
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    return repr(value)


def to_dict(msg) -> dict:
    """Every field of `msg`, defaults included, with proto field names; bytes shown readably.

    Like MessageToDict(preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    but int64 stays int and bytes stay readable, so diffs are easy to read.
    """
    out = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:
            repeated = field.label == field.LABEL_REPEATED
        if repeated:
            out[field.name] = [_value(field, v) for v in value]
        elif field.type == field.TYPE_MESSAGE:
            out[field.name] = to_dict(value) if msg.HasField(field.name) else None
        else:
            out[field.name] = _value(field, value)
    return out


def _value(field, value):
    if field.type == field.TYPE_MESSAGE:
        return to_dict(value)
    if field.type == field.TYPE_BYTES:
        return show_bytes(value)
    if field.type == field.TYPE_ENUM:
        named = field.enum_type.values_by_number.get(value)
        return named.name if named else value
    return value
