#include "inputs.h"

#include <map>

#include "error.h"

namespace edgekit {
namespace {

std::string expected_inputs(const std::vector<TensorSpec>& expected) {
  std::string text = "expected: ";
  for (size_t i = 0; i < expected.size(); ++i) text += (i ? "; " : "") + expected[i].describe();
  return text;
}

// Input name -> file, every name checked; files are not read yet.
std::map<std::string, std::string> match_names(const std::vector<InputOption>& given, const std::vector<TensorSpec>& expected) {
  std::map<std::string, std::string> paths;
  for (const InputOption& input : given) {
    std::string name = input.name;
    if (name.empty()) {
      if (expected.size() != 1) {
        throw InputError("--input " + input.path + " needs NAME= because the model has " + std::to_string(expected.size()) +
                         " inputs; " + expected_inputs(expected));
      }
      if (given.size() != 1) throw InputError("--input " + input.path + " without NAME= must be the only --input");
      name = expected[0].name;
    }
    bool known = false;
    for (const TensorSpec& spec : expected) known |= spec.name == name;
    if (!known) throw InputError("'" + name + "' is not an input of this model; " + expected_inputs(expected));
    if (!paths.emplace(name, input.path).second) throw InputError("input '" + name + "' given twice");
  }
  for (const TensorSpec& spec : expected) {
    if (!paths.count(spec.name)) throw InputError("input '" + spec.name + "' is missing; " + expected_inputs(expected));
  }
  return paths;
}

void check_array(const TensorSpec& spec, const NpyArray& array) {
  if (array.shape != spec.shape || spec.dtype != array.dtype->name) {
    throw InputError("input '" + spec.name + "' is " + describe_tensor(array.shape, array.dtype->name) + ", expected " +
                     describe_tensor(spec.shape, spec.dtype));
  }
}

}  // namespace

std::vector<NpyArray> read_inputs(const std::vector<InputOption>& given, const std::vector<TensorSpec>& expected) {
  std::map<std::string, std::string> paths = match_names(given, expected);
  std::vector<NpyArray> arrays;
  for (const TensorSpec& spec : expected) {
    arrays.push_back(read_npy(paths.at(spec.name)));
    check_array(spec, arrays.back());
  }
  return arrays;
}

}  // namespace edgekit
