// Finding the artifact in a bundle and checking its files before any code is loaded from it.
#ifndef EDGEKIT_RUNNER_ARTIFACT_H_
#define EDGEKIT_RUNNER_ARTIFACT_H_

#include <string>

#include "manifest.h"

namespace edgekit {

struct Artifact {
  std::string folder;  // the folder holding manifest.json and the library
  Manifest manifest;
  std::string library_path() const;
};

// `bundle` is an artifact folder, or a bundle folder with the artifact in `model/`.
// Reads the manifest and checks the sha256 of every listed file (the library must be listed).
// Throws InputError on a missing, incomplete or tampered artifact.
Artifact open_verified_artifact(const std::string& bundle);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_ARTIFACT_H_
