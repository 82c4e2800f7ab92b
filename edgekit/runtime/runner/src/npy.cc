#include "npy.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "error.h"

namespace edgekit {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;
constexpr size_t kMaxDims = 64;                  // numpy 2's NPY_MAXDIMS
constexpr int64_t kMaxDim = int64_t(1) << 48;    // far above any real tensor, far below overflow
constexpr size_t kArrayAlign = 64;               // numpy pads headers to this
constexpr size_t kGrowthAxisMaxDigits = 21;      // numpy's spare room after the dict

[[noreturn]] void bad_header(const std::string& problem) {
  throw InputError("bad .npy header: " + problem);
}

uint32_t read_le(const uint8_t* p, size_t bytes) {
  uint32_t value = 0;
  for (size_t i = 0; i < bytes; ++i) value |= uint32_t(p[i]) << (8 * i);
  return value;
}

// A recursive-descent parser for the one dict literal numpy writes, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (1, 10), }
// Anything outside that grammar (other keys, expressions, escapes) is rejected.
class HeaderParser {
 public:
  explicit HeaderParser(std::string text) : text_(std::move(text)) {}

  NpyHeader parse() {
    NpyHeader header;
    bool have_descr = false, have_order = false, have_shape = false, fortran = false;
    expect('{');
    while (!accept('}')) {
      std::string key = parse_string();
      expect(':');
      if (key == "descr") {
        mark_once(have_descr, key);
        header.dtype = parse_descr();
      } else if (key == "fortran_order") {
        mark_once(have_order, key);
        fortran = parse_bool();
      } else if (key == "shape") {
        mark_once(have_shape, key);
        header.shape = parse_shape();
      } else {
        bad_header("unexpected key '" + key + "' (allowed: descr, fortran_order, shape)");
      }
      if (!accept(',')) {
        expect('}');
        break;
      }
    }
    skip_space();
    if (pos_ != text_.size()) bad_header("trailing characters after the header dict");
    if (!have_descr || !have_order || !have_shape) bad_header("needs the keys descr, fortran_order and shape");
    if (fortran) throw InputError("Fortran-order .npy arrays are not supported (save a C-contiguous array)");
    return header;
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) ++pos_;
  }

  bool accept(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect(char c) {
    if (!accept(c)) bad_header(std::string("expected '") + c + "' at offset " + std::to_string(pos_));
  }

  static void mark_once(bool& seen, const std::string& key) {
    if (seen) bad_header("key '" + key + "' appears twice");
    seen = true;
  }

  std::string parse_string() {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) {
      bad_header("expected a quoted string at offset " + std::to_string(pos_));
    }
    char quote = text_[pos_++];
    size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '\\' || c < 0x20 || c > 0x7e) bad_header("unsupported character in a string");
      ++pos_;
    }
    if (pos_ >= text_.size()) bad_header("unterminated string");
    return text_.substr(start, pos_++ - start);
  }

  const DType* parse_descr() {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '[') throw InputError("structured .npy dtypes are not supported");
    std::string descr = parse_string();
    const DType* dtype = dtype_by_descr(descr);
    if (dtype == nullptr) {
      throw InputError("unsupported .npy dtype '" + descr + "' (supported: little-endian bool, int, uint, float)");
    }
    return dtype;
  }

  bool parse_bool() {
    skip_space();
    for (const char* word : {"True", "False"}) {
      size_t n = std::strlen(word);
      if (text_.compare(pos_, n, word) == 0) {
        pos_ += n;
        return word[0] == 'T';
      }
    }
    bad_header("fortran_order must be True or False");
  }

  // A Python tuple of non-negative ints: (), (3,), (1, 3, 224, 224), optional trailing comma.
  std::vector<int64_t> parse_shape() {
    std::vector<int64_t> shape;
    expect('(');
    bool trailing_comma = false;
    while (!accept(')')) {
      if (!shape.empty() && !trailing_comma) bad_header("expected ',' between shape dimensions");
      if (shape.size() == kMaxDims) bad_header("more than " + std::to_string(kMaxDims) + " dimensions");
      shape.push_back(parse_dim());
      trailing_comma = accept(',');
    }
    // (10) is the integer 10 in Python, not a tuple: numpy always writes (10,).
    if (shape.size() == 1 && !trailing_comma) bad_header("shape must be a tuple, e.g. (10,)");
    return shape;
  }

  int64_t parse_dim() {
    skip_space();
    size_t start = pos_;
    int64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      value = value * 10 + (text_[pos_++] - '0');
      if (value > kMaxDim) bad_header("shape dimension too large");
    }
    if (pos_ == start) bad_header("shape dimensions must be non-negative integers");
    if (text_[start] == '0' && pos_ - start > 1) bad_header("shape dimension with a leading zero");
    return value;
  }

  std::string text_;
  size_t pos_ = 0;
};

size_t checked_data_bytes(const std::vector<int64_t>& shape, size_t itemsize) {
  size_t bytes = itemsize;
  for (int64_t dim : shape) {
    if (__builtin_mul_overflow(bytes, static_cast<size_t>(dim), &bytes)) bad_header("shape is too large (size overflows)");
  }
  return bytes;
}

std::string shape_repr(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace

NpyHeader parse_npy_header(const uint8_t* bytes, size_t size) {
  if (size < kMagicBytes + 2 || std::memcmp(bytes, kMagic, kMagicBytes) != 0) {
    throw InputError("not a .npy file (no \\x93NUMPY magic)");
  }
  uint8_t major = bytes[kMagicBytes], minor = bytes[kMagicBytes + 1];
  if (major < 1 || major > 3 || minor != 0) {
    bad_header("unsupported format version " + std::to_string(major) + "." + std::to_string(minor));
  }
  size_t length_bytes = major == 1 ? 2 : 4;
  size_t prefix = kMagicBytes + 2 + length_bytes;
  if (size < prefix) bad_header("file ends inside the header length");
  size_t header_bytes = read_le(bytes + kMagicBytes + 2, length_bytes);
  if (header_bytes > kMaxNpyHeaderBytes) bad_header("header is longer than " + std::to_string(kMaxNpyHeaderBytes) + " bytes");
  if (size - prefix < header_bytes) bad_header("file ends inside the header");
  NpyHeader header = HeaderParser(std::string(reinterpret_cast<const char*>(bytes) + prefix, header_bytes)).parse();
  header.data_offset = prefix + header_bytes;
  header.data_bytes = checked_data_bytes(header.shape, static_cast<size_t>(header.dtype->itemsize));
  return header;
}

NpyArray parse_npy(const uint8_t* bytes, size_t size) {
  NpyHeader header = parse_npy_header(bytes, size);
  if (size - header.data_offset != header.data_bytes) {
    throw InputError("the header promises " + std::to_string(header.data_bytes) + " data bytes, the file has " +
                     std::to_string(size - header.data_offset));
  }
  NpyArray array{header.dtype, header.shape, {}};
  array.data.assign(bytes + header.data_offset, bytes + size);
  return array;
}

NpyArray read_npy(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) throw InputError("input file not found: " + path);
  if (!S_ISREG(info.st_mode)) throw InputError("input is not a file: " + path);
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) throw InputError("cannot open " + path + ": " + std::strerror(errno));
  size_t size = static_cast<size_t>(info.st_size);
  // Read only the header first, so a lying header cannot make us read a huge file.
  std::vector<uint8_t> head(std::min(size, kMagicBytes + 6 + kMaxNpyHeaderBytes));
  if (std::fread(head.data(), 1, head.size(), file.get()) != head.size()) throw InputError("cannot read " + path);
  try {
    NpyHeader header = parse_npy_header(head.data(), head.size());
    if (size - header.data_offset != header.data_bytes) {
      throw InputError("the header promises " + std::to_string(header.data_bytes) + " data bytes, the file has " +
                       std::to_string(size - header.data_offset));
    }
    NpyArray array{header.dtype, header.shape, std::vector<uint8_t>(header.data_bytes)};
    size_t in_head = head.size() - header.data_offset;
    std::memcpy(array.data.data(), head.data() + header.data_offset, in_head);
    size_t rest = header.data_bytes - in_head;
    if (rest && std::fread(array.data.data() + in_head, 1, rest, file.get()) != rest) throw InputError("cannot read the data");
    return array;
  } catch (const InputError& error) {
    throw InputError(path + " is not a usable .npy file: " + error.what());
  }
}

std::string encode_npy(const DType& dtype, const std::vector<int64_t>& shape, const void* data, size_t data_bytes) {
  // The same bytes numpy.save writes: sorted keys, growth padding, 64-byte alignment.
  std::string dict = std::string("{'descr': '") + dtype.descr + "', 'fortran_order': False, 'shape': " + shape_repr(shape) + ", }";
  if (!shape.empty()) dict += std::string(kGrowthAxisMaxDigits - std::to_string(shape[0]).size(), ' ');
  size_t header_bytes = dict.size() + 1;
  header_bytes += kArrayAlign - (kMagicBytes + 4 + header_bytes) % kArrayAlign;
  if (header_bytes > 0xffff) throw InputError("array header too long for .npy version 1.0");
  dict.resize(header_bytes - 1, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicBytes);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header_bytes & 0xff);
  out += static_cast<char>(header_bytes >> 8);
  out += dict;
  out.append(static_cast<const char*>(data), data_bytes);
  return out;
}

std::string describe_tensor(const std::vector<int64_t>& shape, const std::string& dtype) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += (i ? "x" : "") + std::to_string(shape[i]);
  return (dims.empty() ? "scalar" : dims) + " " + dtype;
}

}  // namespace edgekit
