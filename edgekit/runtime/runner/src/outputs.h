// Writing the model's outputs: .npz with every output by name, or .npy for a single output.
#ifndef EDGEKIT_RUNNER_OUTPUTS_H_
#define EDGEKIT_RUNNER_OUTPUTS_H_

#include <string>
#include <vector>

#include "npy.h"

namespace edgekit {

// Throws InputError if `path` cannot take `output_count` outputs or its folder does not exist;
// called before anything runs so a bad path costs nothing.
void check_output_path(const std::string& path, bool npz, size_t output_count);

// Write atomically (temporary file + rename). Throws RuntimeFailure.
void write_outputs(const std::string& path, bool npz, const std::vector<std::string>& names,
                   const std::vector<NpyArray>& arrays);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_OUTPUTS_H_
