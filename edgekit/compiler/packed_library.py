"""The GPU code packed inside an exported model.so, read and rewritten without TVM's help.

TVM 0.27 packs a module's imports (the CUDA or OpenCL kernels) as one blob in the shared
library. `export_gpu_library` swaps the CUDA source in that blob for a cubin compiled at build
time, and reads the written library back to prove what the board will load.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import tvm_ffi

from edgekit.errors import UnsupportedModelError

DEVICE_KINDS = ("cuda", "opencl")
EM_AARCH64, EM_X86_64, EM_CUDA = 183, 62, 190
ELF_MACHINES = {EM_AARCH64: "aarch64", EM_X86_64: "x86_64", EM_CUDA: "cuda"}


# ---- the packed import blob (src/target/codegen.cc ModuleSerializer, support/serializer.h) ----
# blob = u64 nbytes, then: vec<u64> import_tree_row_ptr, vec<u64> child_indices, then per module
# group a string kind and, unless the kind is "_lib" (the host code itself), a string holding
# the module's SaveToBytes. Strings and vectors are a u64 count, then the items. A CUDA or
# OpenCL module's bytes are: string fmt, Map<String, FunctionInfo> (the kernels the host code
# launches), string code (cuda_module.cc / opencl_module.cc SaveToBytes).


@dataclass(frozen=True)
class DeviceModule:
    fmt: str  # "cuda" (CUDA C++ source), "cubin", "ptx", "fatbin" or "cl" (OpenCL C)
    kernels: tuple[str, ...]  # the function table's names, in file order
    code: bytes
    table: bytes  # the serialized function table, kept byte for byte

    def to_bytes(self) -> bytes:
        return _string(self.fmt.encode()) + self.table + _string(self.code)

    @classmethod
    def from_bytes(cls, data: bytes) -> DeviceModule:
        fmt, start = _read_string(data, 0)
        (count,) = struct.unpack_from("<Q", data, start)
        at, names = start + 8, []
        for _ in range(count):
            key, at = _read_string(data, at)
            _, at = _read_string(data, at)  # FunctionInfo.name
            at = _skip_array(data, at, item_size=4)  # arg_types: DLDataType (u8 code, u8 bits, u16 lanes)
            (tags,) = struct.unpack_from("<Q", data, at)
            at += 8
            for _ in range(tags):  # launch_param_tags: strings
                _, at = _read_string(data, at)
            at = _skip_array(data, at, item_size=4)  # arg_extra_tags: int enum
            names.append(key.decode())
        table = data[start:at]
        code, end = _read_string(data, at)
        if end != len(data):
            raise ValueError(f"device module has {len(data) - end} unread bytes")
        return cls(fmt.decode(), tuple(names), code, table)


def with_cuda_code(blob: bytes, source: bytes, fmt: str, binary: bytes) -> bytes:
    row_ptr, children, entries = read_blob(blob)
    cuda = [index for index, (kind, _) in enumerate(entries) if kind == "cuda"]
    if len(cuda) != 1:
        raise UnsupportedModelError(f"expected one CUDA module in the packed library, found {len(cuda)}", "report this model")
    module = DeviceModule.from_bytes(entries[cuda[0]][1])
    if module.fmt != "cuda" or module.code != source:
        problem = f"the packed CUDA module is not the source that was compiled (format {module.fmt})"
        raise UnsupportedModelError(problem, "report this model")
    compiled = DeviceModule(fmt, module.kernels, binary, module.table)
    entries[cuda[0]] = ("cuda", compiled.to_bytes())
    return _write_blob(row_ptr, children, entries)


def read_blob(blob: bytes) -> tuple[list[int], list[int], list[tuple[str, bytes]]]:
    """Split a packed import blob into its import tree and (kind, bytes) entries."""
    (nbytes,) = struct.unpack_from("<Q", blob, 0)
    offset = 8
    row_ptr, offset = _read_vector(blob, offset)
    children, offset = _read_vector(blob, offset)
    entries = []
    for _ in range(len(row_ptr) - 1):
        kind, offset = _read_string(blob, offset)
        data = b""
        if kind != b"_lib":
            data, offset = _read_string(blob, offset)
        entries.append((kind.decode(), data))
    if offset != 8 + nbytes:
        raise ValueError(f"packed blob is {nbytes} bytes but its entries end at {offset - 8}")
    return row_ptr, children, entries


def _write_blob(row_ptr: list[int], children: list[int], entries: list[tuple[str, bytes]]) -> bytes:
    body = _vector(row_ptr) + _vector(children)
    for kind, data in entries:
        body += _string(kind.encode()) + (b"" if kind == "_lib" else _string(data))
    return struct.pack("<Q", len(body)) + body


def _read_string(data: bytes, offset: int) -> tuple[bytes, int]:
    (size,) = struct.unpack_from("<Q", data, offset)
    if offset + 8 + size > len(data):
        raise ValueError("string runs past the end of the data")
    return data[offset + 8 : offset + 8 + size], offset + 8 + size


def _read_vector(data: bytes, offset: int) -> tuple[list[int], int]:
    (count,) = struct.unpack_from("<Q", data, offset)
    return list(struct.unpack_from(f"<{count}Q", data, offset + 8)), offset + 8 + 8 * count


def _skip_array(data: bytes, offset: int, item_size: int) -> int:
    (count,) = struct.unpack_from("<Q", data, offset)
    return offset + 8 + item_size * count


def _string(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + data


def _vector(values: list[int]) -> bytes:
    return struct.pack(f"<Q{len(values)}Q", len(values), *values)


# ---- reading what was built: ELF64 little-endian (the board's .so and the cubin) ----


@dataclass(frozen=True)
class GpuLibrary:
    """What an exported model.so holds, read back from the file."""

    machine: str  # "aarch64" | "x86_64"
    device: str  # "cuda" | "opencl"
    code_format: str  # what the board's loader gets: "cubin", "cl", or "cuda" (source to compile)
    arch: str  # "sm_87" for a cubin, "" for source
    kernels: tuple[str, ...]  # the function table's kernels (a cubin must define every one)
    code_bytes: int


def inspect_gpu_library(path: Path) -> GpuLibrary:
    """Read model.so's ELF header and its packed GPU module; ValueError if it has none."""
    data = Path(path).read_bytes()
    machine, _, sections = _elf(data)
    blob = _elf_symbol(data, sections, tvm_ffi.get_global_func("runtime.ModuleImportsBlobName")())
    _, _, entries = read_blob(blob[: 8 + struct.unpack_from("<Q", blob, 0)[0]])
    devices = [(kind, payload) for kind, payload in entries if kind in DEVICE_KINDS]
    if len(devices) != 1:
        raise ValueError(f"{path} packs {len(devices)} GPU modules (modules: {[kind for kind, _ in entries]})")
    kind, payload = devices[0]
    module = DeviceModule.from_bytes(payload)
    arch = ""
    if module.fmt == "cubin":
        sm, defined = cubin_contents(module.code)
        missing = set(module.kernels) - defined
        if missing:
            raise ValueError(f"the cubin lacks kernels {sorted(missing)}")
        arch = f"sm_{sm}"
    return GpuLibrary(ELF_MACHINES.get(machine, str(machine)), kind, module.fmt, arch, module.kernels, len(module.code))


def cubin_contents(cubin: bytes) -> tuple[int, set[str]]:
    """SM number and kernel names of a CUDA ELF (cubin); ValueError if it is not one."""
    machine, flags, sections = _elf(cubin)
    if machine != EM_CUDA:
        raise ValueError(f"not a cubin: ELF machine {machine}, expected {EM_CUDA} (EM_CUDA)")
    # e_flags holds the SM: bits 8-15 from the CUDA ELF ABI version 8 on (CUDA 13.0 here writes
    # 0x06005704 for sm_87), bits 0-7 before it.
    arch = (flags >> 8) & 0xFF if cubin[8] >= 8 else flags & 0xFF
    return arch, {name.removeprefix(".text.") for name, *_ in sections if name.startswith(".text.")}


def _elf(data: bytes) -> tuple[int, int, list[tuple[str, int, int, int, int, int]]]:
    """(e_machine, e_flags, [(name, type, addr, offset, size, link)]) of an ELF64 LE file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (_, _, machine, _, _, _, shoff, flags, _, _, _, shentsize, shnum, shstrndx) = struct.unpack_from("<16sHHIQQQIHHHHHH", data, 0)
    raw = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_at = raw[shstrndx][4]
    table = []
    for name, kind, _, addr, offset, size, link, *_ in raw:
        end = data.index(b"\0", names_at + name)
        table.append((data[names_at + name : end].decode(), kind, addr, offset, size, link))
    return machine, flags, table


def _elf_symbol(data: bytes, sections: list, wanted: str) -> bytes:
    """The bytes a defined symbol points at, from .dynsym, else .symtab."""
    target = wanted.encode() + b"\0"
    for symbol_table in (11, 2):  # SHT_DYNSYM, SHT_SYMTAB
        for _, kind, _, offset, size, link in sections:
            if kind != symbol_table:
                continue
            strings = sections[link][3]
            for at in range(offset, offset + size, 24):
                name, _, _, index, value, length = struct.unpack_from("<IBBHQQ", data, at)
                if 0 < index < len(sections) and data.startswith(target, strings + name):
                    _, section_kind, addr, base, _, _ = sections[index]
                    if section_kind == 8:  # SHT_NOBITS: no bytes in the file
                        break
                    start = base + value - addr
                    return data[start : start + length] if length else data[start:]
    raise ValueError(f"symbol {wanted} not found")
