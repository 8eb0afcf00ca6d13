#include "atomic_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
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

namespace {

constexpr const char* kLockName = ".autoguide.lock";

// The pid a holder wrote into its lock file; it writes right after locking, so a reader may be early.
std::string holder_pid(const std::string& lock_path) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::ifstream in(lock_path);
    long pid = 0;
    if (in >> pid && pid > 0) return std::to_string(pid);
    ::usleep(5000);
  }
  return "unknown";
}

// True when `fd` is still the file at `path`: a holder removes its lock file on release, and a lock taken on
// the removed file would exclude nobody who opens the path afresh.
bool still_linked(int fd, const std::string& path) {
  struct stat open_file {}, on_disk {};
  return ::fstat(fd, &open_file) == 0 && ::stat(path.c_str(), &on_disk) == 0 && open_file.st_dev == on_disk.st_dev &&
         open_file.st_ino == on_disk.st_ino;
}

}  // namespace

OutputLock OutputLock::claim_folder(const std::string& dir, const std::string& option) {
  std::error_code ec;
  const bool existed = fs::exists(dir, ec);
  ensure_writable_dir(dir);
  return claim(dir, (fs::path(dir) / kLockName).string(), option, existed ? "" : dir);
}

OutputLock OutputLock::claim_file(const std::string& path, const std::string& option) {
  ensure_writable_parent(path);
  const fs::path p(path);
  return claim(path, (p.parent_path() / ("." + p.filename().string() + kLockName)).string(), option, "");
}

OutputLock OutputLock::claim(const std::string& target, const std::string& lock_path, const std::string& option,
                             const std::string& created_dir) {
  for (;;) {
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      throw UsageError("cannot create the lock file '" + lock_path + "': " + std::strerror(errno) +
                       "; choose a writable location");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err != EWOULDBLOCK) throw UsageError("cannot lock '" + lock_path + "': " + std::strerror(err));
      throw UsageError(target + " is being written by another autoguide process (pid " + holder_pid(lock_path) +
                       "); wait for it or choose another " + option);
    }
    if (!still_linked(fd, lock_path)) {  // its holder removed it between our open and flock: try afresh
      ::close(fd);
      continue;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      const int err = errno;
      ::unlink(lock_path.c_str());
      ::close(fd);
      throw RuntimeFailure("writing the lock file '" + lock_path + "' failed: " + std::strerror(err));
    }
    return OutputLock(fd, lock_path, created_dir);
  }
}

OutputLock::OutputLock(OutputLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      lock_path_(std::move(other.lock_path_)),
      created_dir_(std::move(other.created_dir_)) {}

OutputLock& OutputLock::operator=(OutputLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    lock_path_ = std::move(other.lock_path_);
    created_dir_ = std::move(other.created_dir_);
  }
  return *this;
}

OutputLock::~OutputLock() { release(); }

void OutputLock::release() noexcept {
  if (fd_ < 0) return;
  // Unlinked while still locked, so a waiting claimer that opened the old file sees it is gone (still_linked).
  ::unlink(lock_path_.c_str());
  ::close(fd_);
  fd_ = -1;
  if (!created_dir_.empty()) {
    std::error_code ec;
    if (fs::is_empty(created_dir_, ec)) fs::remove(created_dir_, ec);
  }
}

}  // namespace autoguide
