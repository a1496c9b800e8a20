"""Protocol-buffer message classes built at import time, without ``protoc``.

The reference stores datasets and experiment specs as proto2 messages. Rather than
shipping generated ``*_pb2.py`` files, :func:`build_messages` describes a ``.proto``
file in Python (``descriptor_pb2``), adds it to a private descriptor pool and returns
the message classes (``message_factory``). Binary wire format and text format are
those of the reference's own ``.proto`` files as long as names, numbers, types and
labels match.

This module also defines the reference's dataset messages (``datasets.proto``):
``FeatureVector`` and ``ScalarLabelDataset`` (spec §5.5).

Example:
    >>> from azero_jax.spec import protos
    >>> classes = protos.build_messages(
    ...     "example/point.proto", "example",
    ...     {"Point": [("x", 1, "double", "optional", None, 0.5),
    ...                ("tags", 2, "string", "repeated")]})
    >>> point = classes["Point"](tags=["a"])
    >>> point.x, list(point.tags)
    (0.5, ['a'])
    >>> ds = protos.ScalarLabelDataset()
    >>> ds.train_labels.extend([1.0, 0.0]); len(ds.SerializeToString())
    10
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FDP = descriptor_pb2.FieldDescriptorProto

SCALAR_TYPES = {
    "double": FDP.TYPE_DOUBLE, "float": FDP.TYPE_FLOAT, "int64": FDP.TYPE_INT64,
    "uint64": FDP.TYPE_UINT64, "int32": FDP.TYPE_INT32, "fixed64": FDP.TYPE_FIXED64,
    "fixed32": FDP.TYPE_FIXED32, "bool": FDP.TYPE_BOOL, "string": FDP.TYPE_STRING,
    "bytes": FDP.TYPE_BYTES, "uint32": FDP.TYPE_UINT32, "sfixed32": FDP.TYPE_SFIXED32,
    "sfixed64": FDP.TYPE_SFIXED64, "sint32": FDP.TYPE_SINT32, "sint64": FDP.TYPE_SINT64,
}
LABELS = {"optional": FDP.LABEL_OPTIONAL, "required": FDP.LABEL_REQUIRED,
          "repeated": FDP.LABEL_REPEATED}

# One pool for every file built here, so files can depend on each other.
POOL = descriptor_pool.DescriptorPool()
_BUILT: dict[str, tuple[bytes, dict]] = {}


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a message.

    Attributes:
      name: field name.
      number: field number (as in the reference's ``.proto``).
      type: a scalar type (``"double"``, ``"uint32"``, ``"string"``, ...) or the name of a
        message or enum: a bare name is looked up in the same file's package, a dotted
        name (``"other.pkg.Msg"``) is taken as fully qualified.
      label: ``"optional"``, ``"required"`` or ``"repeated"``.
      default: proto2 default value of a singular scalar/enum field (enum: value name).
      oneof: name of the oneof this field belongs to.
      packed: for repeated numeric fields: wire-packed (proto2 default False).
    """

    name: str
    number: int
    type: str
    label: str = "optional"
    default: object = None
    oneof: str | None = None
    packed: bool | None = None


def _as_field(spec) -> Field:
    if isinstance(spec, Field):
        return spec
    if isinstance(spec, Mapping):
        return Field(**spec)
    spec = tuple(spec)
    if not 3 <= len(spec) <= 7:
        raise ValueError(f"field spec must be (name, number, type[, label, type_name, default, "
                         f"oneof]), got {spec!r}")
    name, number, type_ = spec[:3]
    label = spec[3] if len(spec) > 3 and spec[3] is not None else "optional"
    type_name = spec[4] if len(spec) > 4 else None
    default = spec[5] if len(spec) > 5 else None
    oneof = spec[6] if len(spec) > 6 else None
    if type_ in ("message", "enum"):
        if not type_name:
            raise ValueError(f"field {name!r}: type {type_!r} needs a type_name")
        type_ = type_name
    return Field(name, int(number), type_, label, default, oneof)


def _default_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value == value else "nan"
    return str(value)


def build_messages(file_name: str, package: str, messages: Mapping[str, Sequence],
                   enums: Mapping[str, Sequence[tuple[str, int]] | Mapping[str, int]] | None = None,
                   dependencies: Sequence[str] = (), syntax: str = "proto2") -> dict:
    """Builds a ``.proto`` file's messages and enums and returns them by name.

    Args:
      file_name: the virtual file name (unique per file, e.g. ``"azero_jax/task.proto"``).
      package: the proto package (messages get full names ``package.Name``).
      messages: ``{message_name: [field, ...]}`` in definition order, each field a
        :class:`Field`, a dict of its attributes or a tuple
        ``(name, number, type, label="optional", type_name=None, default=None, oneof=None)``
        where ``type`` is a scalar type, a message/enum name, or ``"message"``/``"enum"``
        with the name in ``type_name``.
      enums: ``{enum_name: [(value_name, number), ...]}`` (or a dict value_name -> number).
      dependencies: file names already built here whose types this file uses (files
        defining a referenced type are added automatically; e.g. a ``TaskSpec`` file in
        package ``automl_zero`` can use ``"ScalarLabelDataset"`` from this module).
      syntax: ``"proto2"`` (the reference's) or ``"proto3"``.

    Returns:
      ``{name: class}``: message classes, and for enums the ``EnumDescriptor`` wrapped
      in ``google.protobuf.internal.enum_type_wrapper.EnumTypeWrapper`` (``.Value(name)``,
      ``.Name(number)``) so that ``returned["Enum"].Value("X")`` works.

    Building the same file twice with the same content returns the same classes;
    different content under an existing file name raises ``ValueError``.
    """
    from google.protobuf.internal import enum_type_wrapper

    enums = dict(enums or {})
    file_proto = descriptor_pb2.FileDescriptorProto(name=file_name, package=package,
                                                    syntax=syntax)
    file_proto.dependency.extend(dependencies)
    local_types = set(messages) | set(enums)
    for enum_name, values in enums.items():
        values = list(values.items()) if isinstance(values, Mapping) else list(values)
        if not values:
            raise ValueError(f"enum {enum_name!r} has no values")
        enum_proto = file_proto.enum_type.add(name=enum_name)
        for value_name, number in values:
            enum_proto.value.add(name=value_name, number=int(number))
    for message_name, fields in messages.items():
        message_proto = file_proto.message_type.add(name=message_name)
        oneofs: dict[str, int] = {}
        for spec in fields:
            field = _as_field(spec)
            if field.label not in LABELS:
                raise ValueError(f"{message_name}.{field.name}: label must be one of "
                                 f"{sorted(LABELS)}, got {field.label!r}")
            proto = message_proto.field.add(name=field.name, number=field.number,
                                             label=LABELS[field.label])
            if field.type in SCALAR_TYPES:
                proto.type = SCALAR_TYPES[field.type]
            else:
                qualified = _qualify(field.type, package, local_types)
                proto.type_name = qualified
                defining_file = (None if field.type in local_types
                                 else _defining_file(qualified))
                if (defining_file and defining_file != file_name
                        and defining_file not in file_proto.dependency):
                    file_proto.dependency.append(defining_file)
                if field.type in enums or _is_enum(qualified):
                    proto.type = FDP.TYPE_ENUM
                elif field.type in messages or _is_message(qualified):
                    proto.type = FDP.TYPE_MESSAGE
                else:
                    raise ValueError(f"{message_name}.{field.name}: unknown type {field.type!r}")
            if field.default is not None:
                if field.label == "repeated" or proto.type == FDP.TYPE_MESSAGE:
                    raise ValueError(f"{message_name}.{field.name}: only singular scalar or enum "
                                     f"fields take a default")
                proto.default_value = _default_text(field.default)
            if field.packed is not None:
                proto.options.packed = bool(field.packed)
            if field.oneof is not None:
                if field.oneof not in oneofs:
                    oneofs[field.oneof] = len(message_proto.oneof_decl)
                    message_proto.oneof_decl.add(name=field.oneof)
                proto.oneof_index = oneofs[field.oneof]
    serialized = file_proto.SerializeToString(deterministic=True)
    if file_name in _BUILT:
        previous, classes = _BUILT[file_name]
        if previous != serialized:
            raise ValueError(f"proto file {file_name!r} was already built with other content")
        return dict(classes)
    try:
        file_descriptor = POOL.Add(file_proto)
    except TypeError:  # older protobuf returns None from Add
        file_descriptor = None
    if not hasattr(file_descriptor, "message_types_by_name"):
        file_descriptor = POOL.FindFileByName(file_name)
    classes: dict = {}
    for message_name in messages:
        descriptor = file_descriptor.message_types_by_name[message_name]
        classes[message_name] = _message_class(descriptor)
    for enum_name in enums:
        classes[enum_name] = enum_type_wrapper.EnumTypeWrapper(
            file_descriptor.enum_types_by_name[enum_name])
    _BUILT[file_name] = (serialized, classes)
    return dict(classes)


def _message_class(descriptor):
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(POOL).GetPrototype(descriptor)  # protobuf < 4.22


def _qualify(type_name: str, package: str, local_types) -> str:
    """``.package.Name`` for a local or same-package type, else the name as fully qualified."""
    if type_name in local_types:
        return f".{package}.{type_name}"
    if "." not in type_name.lstrip(".") and (_is_enum(f".{package}.{type_name}")
                                             or _is_message(f".{package}.{type_name}")):
        return f".{package}.{type_name}"
    return "." + type_name.lstrip(".")


def _defining_file(full_name: str) -> str | None:
    """The file (already in the pool) that defines a type, or None."""
    name = full_name.lstrip(".")
    for find in (POOL.FindMessageTypeByName, POOL.FindEnumTypeByName):
        try:
            return find(name).file.name
        except KeyError:
            continue
    return None


def _is_enum(full_name: str) -> bool:
    try:
        POOL.FindEnumTypeByName(full_name.lstrip("."))
        return True
    except KeyError:
        return False


def _is_message(full_name: str) -> bool:
    try:
        POOL.FindMessageTypeByName(full_name.lstrip("."))
        return True
    except KeyError:
        return False


def message_class(full_name: str):
    """The class of an already built message, by full name (``"automl_zero.TaskSpec"``)."""
    return _message_class(POOL.FindMessageTypeByName(full_name))


# --------------------------------------------------------------------------------------
# The reference's dataset messages (automl_zero/datasets.proto, proto2).

DATASETS_PROTO = "automl_zero/datasets.proto"
DATASETS_PACKAGE = "automl_zero"

_DATASET_CLASSES = build_messages(DATASETS_PROTO, DATASETS_PACKAGE, {
    "FeatureVector": [("features", 1, "float", "repeated")],
    "ScalarLabelDataset": [
        ("train_features", 1, "FeatureVector", "repeated"),
        ("train_labels", 2, "float", "repeated"),
        ("valid_features", 3, "FeatureVector", "repeated"),
        ("valid_labels", 4, "float", "repeated"),
        ("test_features", 5, "FeatureVector", "repeated"),
        ("test_labels", 6, "float", "repeated"),
    ],
})
FeatureVector = _DATASET_CLASSES["FeatureVector"]
ScalarLabelDataset = _DATASET_CLASSES["ScalarLabelDataset"]

__all__ = ["Field", "build_messages", "message_class", "FeatureVector", "ScalarLabelDataset",
           "POOL", "DATASETS_PROTO", "DATASETS_PACKAGE"]
