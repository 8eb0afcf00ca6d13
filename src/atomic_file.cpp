#include "autoguide/atomic_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "autoguide/error.hpp"

namespace fs = std::filesystem;

namespace autoguide {

namespace {
std::string temp_name_for(const std::string& path) {
  fs::path p(path);
  static int counter = 0;
  std::string name = "." + p.filename().string() + ".tmp" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  return (p.parent_path() / name).string();
}
}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = temp_name_for(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw UsageError("cannot write '" + path + "': " + std::strerror(errno) + "; choose a writable location");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw RuntimeFailure("writing '" + path + "' failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw UsageError("cannot create '" + path + "': " + std::strerror(errno));
  }
}

void ensure_writable_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw UsageError("cannot create output folder '" + dir + "': " + (ec ? ec.message() : "not a folder") +
                     "; choose a writable path");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw UsageError("output folder '" + dir + "' is not writable; choose a writable path");
  }
}

void ensure_writable_parent(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  ensure_writable_dir(parent.empty() ? std::string(".") : parent.string());
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

}  // namespace autoguide
