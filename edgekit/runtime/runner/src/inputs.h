// Matching --input files to the model's inputs, checked against the manifest before loading.
#ifndef EDGEKIT_RUNNER_INPUTS_H_
#define EDGEKIT_RUNNER_INPUTS_H_

#include <vector>

#include "manifest.h"
#include "npy.h"
#include "options.h"

namespace edgekit {

// One array per manifest input, in manifest order. Throws InputError for a missing, unknown or
// repeated input name, an unreadable .npy file, or a shape or dtype other than the manifest's.
std::vector<NpyArray> read_inputs(const std::vector<InputOption>& given, const std::vector<TensorSpec>& expected);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_INPUTS_H_
