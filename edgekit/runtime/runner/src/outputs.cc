#include "outputs.h"

#include <utility>

#include "error.h"
#include "files.h"
#include "npz.h"

namespace edgekit {
namespace {

std::string encode(const NpyArray& array) { return encode_npy(*array.dtype, array.shape, array.data.data(), array.data.size()); }

}  // namespace

void check_output_path(const std::string& path, bool npz, size_t output_count) {
  if (!npz && output_count != 1) {
    throw InputError("the model has " + std::to_string(output_count) + " outputs and " + path + " is not .npz: write --output OUT.npz");
  }
  size_t slash = path.rfind('/');
  std::string folder = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  if (!is_directory(folder)) throw InputError("the folder of --output " + path + " does not exist");
  if (is_directory(path)) throw InputError("--output " + path + " is a folder; give a file name");
}

void write_outputs(const std::string& path, bool npz, const std::vector<std::string>& names, const std::vector<NpyArray>& arrays) {
  if (!npz) {
    write_file_atomic(path, encode(arrays.at(0)));
    return;
  }
  std::vector<std::pair<std::string, std::string>> members;
  for (size_t i = 0; i < arrays.size(); ++i) members.emplace_back(names.at(i), encode(arrays[i]));
  write_file_atomic(path, encode_npz(members));
}

}  // namespace edgekit
