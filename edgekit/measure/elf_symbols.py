"""Which function of a shared library a run's basic blocks belong to.

QEMU reports guest addresses, and where the loader put model.so is not known outside the
guest; a block's instruction bytes are. Blocks found once in the library's executable sections
give the load base, and the base maps every block to the function symbol covering it. Blocks of
other libraries (the TVM runtime, libc) fall outside the library's functions.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from pathlib import Path

MIN_BYTES = 16
SHF_EXECINSTR = 0x4
STT_FUNC = 2


@dataclass(frozen=True)
class Symbols:
    text: list[tuple[int, bytes]]  # (address, bytes) of each executable section
    starts: list[int]  # sorted function addresses
    names: list[str]
    ends: list[int]

    def functions_of(self, blocks: list[tuple[int, bytes]]) -> dict[int, str]:
        """Function names by guest address for blocks (guest address, bytes) of this library.

        The loader placed the library at an unknown base: each long block found exactly once in
        the library votes for base = guest address - library address with its length (a short
        block of another library can match by chance; a long one hardly), and the base with the
        most matched bytes maps every block to the function covering it.
        """
        votes: dict[int, int] = {}
        for vaddr, code in blocks:
            if len(code) < MIN_BYTES:
                continue
            found = self._find_once(code)
            if found is not None:
                votes[vaddr - found] = votes.get(vaddr - found, 0) + len(code)
        if not votes:
            return {}
        base = max(votes, key=votes.get)
        names = {}
        for vaddr, _ in blocks:
            address = vaddr - base
            index = bisect.bisect_right(self.starts, address) - 1
            if index >= 0 and address < self.ends[index]:
                names[vaddr] = self.names[index]
        return names

    def _find_once(self, code: bytes) -> int | None:
        hits = []
        for address, data in self.text:
            at = data.find(code)
            if at >= 0:
                hits.append(address + at)
                if data.find(code, at + 1) >= 0:
                    return None
        return hits[0] if len(hits) == 1 else None


def read_symbols(library: Path) -> Symbols:
    """Executable sections and function symbols of an ELF64 little-endian shared library."""
    data = Path(library).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{library} is not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    text = [(s[3], data[s[4]:s[4] + s[5]]) for s in sections if s[2] & SHF_EXECINSTR and s[1] == 1]
    functions = []
    for s in sections:
        if s[1] not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        strings = sections[s[6]]
        for offset in range(s[4], s[4] + s[5], 24):
            name_at, info, _, _, value, size = struct.unpack_from("<IBBHQQ", data, offset)
            if info & 0xF != STT_FUNC or value == 0:
                continue
            start = strings[4] + name_at
            name = data[start:data.index(b"\0", start)].decode(errors="replace")
            functions.append((value, size, name))
    functions = sorted(set(functions))
    starts = [f[0] for f in functions]
    # A function runs to the next symbol: st_size undercounts LLVM's TVM kernels, whose loop
    # bodies can sit past the size the symbol states (0x41d64 against a body at 0x42000).
    text_end = max((address + len(body) for address, body in text), default=0)
    ends = [starts[i + 1] if i + 1 < len(starts) else text_end for i in range(len(starts))]
    return Symbols(text=text, starts=starts, ends=ends, names=[f[2] for f in functions])
