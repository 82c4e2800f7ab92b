#include "files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "error.h"

namespace edgekit {

bool is_file(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

bool is_directory(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

std::string join_path(const std::string& folder, const std::string& name) {
  if (folder.empty()) return name;
  return folder.back() == '/' ? folder + name : folder + "/" + name;
}

std::string executable_folder() {
  std::vector<char> path(4096);
  ssize_t size = readlink("/proc/self/exe", path.data(), path.size());
  if (size <= 0 || static_cast<size_t>(size) >= path.size()) throw RuntimeFailure("cannot find the runner's own folder (/proc/self/exe)");
  std::string binary(path.data(), static_cast<size_t>(size));
  size_t slash = binary.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : binary.substr(0, slash);
}

std::string read_text_file(const std::string& path, const std::string& what) {
  if (!is_file(path)) throw InputError(what + " not found: " + path);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) throw InputError("cannot read " + what + " " + path);
  return text.str();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  size_t slash = path.rfind('/');
  std::string folder = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string pattern = join_path(folder, "." + base + ".XXXXXX");
  std::vector<char> tmp(pattern.begin(), pattern.end());
  tmp.push_back('\0');
  int fd = mkstemp(tmp.data());
  if (fd < 0) throw RuntimeFailure("cannot write " + path + ": " + std::strerror(errno));
  size_t written = 0;
  while (written < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  int saved_errno = errno;
  mode_t mask = umask(0);  // mkstemp makes 0600; give the output the mode an ordinary new file gets
  umask(mask);
  bool ok = written == bytes.size() && fchmod(fd, 0666 & ~mask) == 0;
  ok = (close(fd) == 0) && ok;
  if (!ok || std::rename(tmp.data(), path.c_str()) != 0) {
    if (ok) saved_errno = errno;
    unlink(tmp.data());
    throw RuntimeFailure("cannot write " + path + ": " + std::strerror(saved_errno));
  }
}

}  // namespace edgekit
