#include "artifact.h"

#include "error.h"
#include "files.h"
#include "sha256.h"

namespace edgekit {
namespace {

constexpr char kBundleModelFolder[] = "model";
constexpr char kRebuild[] = "; rebuild it with `edgekit compile`";

std::string find_artifact_folder(const std::string& bundle) {
  if (!is_directory(bundle)) throw InputError("bundle folder not found: " + bundle);
  if (is_file(join_path(bundle, kManifestName))) return bundle;
  std::string nested = join_path(bundle, kBundleModelFolder);
  if (is_file(join_path(nested, kManifestName))) return nested;
  throw InputError(bundle + " has no " + kManifestName + " (nor " + kBundleModelFolder + "/" + kManifestName +
                   "): not an edgekit artifact or bundle");
}

void verify_files(const std::string& folder, const Manifest& manifest) {
  bool library_listed = false;
  for (const auto& [name, expected] : manifest.files) {
    library_listed |= name == manifest.library;
    std::string path = join_path(folder, name);
    if (!is_file(path)) throw InputError("artifact file " + path + " is missing" + kRebuild);
    std::string actual = sha256_file(path);
    if (actual != expected) {
      throw InputError("artifact file " + path + " does not match its manifest (sha256 " + actual.substr(0, 12) +
                       "..., expected " + expected.substr(0, 12) + "...): modified or corrupted" + kRebuild);
    }
  }
  if (!library_listed) throw InputError(join_path(folder, kManifestName) + " does not list its library " + manifest.library + kRebuild);
}

}  // namespace

std::string Artifact::library_path() const { return join_path(folder, manifest.library); }

Artifact open_verified_artifact(const std::string& bundle) {
  std::string folder = find_artifact_folder(bundle);
  std::string manifest_path = join_path(folder, kManifestName);
  Manifest manifest = parse_manifest(read_text_file(manifest_path, "manifest"), manifest_path);
  verify_files(folder, manifest);
  return Artifact{folder, std::move(manifest)};
}

}  // namespace edgekit
