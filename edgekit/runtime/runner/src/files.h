// Whole-file reads and atomic writes: no half-written output is ever left at a user's path.
#ifndef EDGEKIT_RUNNER_FILES_H_
#define EDGEKIT_RUNNER_FILES_H_

#include <string>

namespace edgekit {

bool is_file(const std::string& path);
bool is_directory(const std::string& path);
std::string join_path(const std::string& folder, const std::string& name);

// The folder of the running executable (from /proc/self/exe; qemu-user reports the emulated
// binary's). Throws RuntimeFailure if it cannot be read.
std::string executable_folder();

// The whole file as bytes. Throws InputError naming `what` if it is missing or unreadable.
std::string read_text_file(const std::string& path, const std::string& what);

// Write `bytes` to a temporary file beside `path`, then rename it onto `path`.
// Throws RuntimeFailure (and leaves nothing behind) if any step fails.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_FILES_H_
