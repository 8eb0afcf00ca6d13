// OutputLock: one run at a time per output folder or file, across processes, with no stale claims.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"

using namespace autoguide;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("autoguide_lock_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  return d;
}

std::string refusal(const std::string& dir, const std::string& option = "--outdir") {
  try {
    OutputLock lock = OutputLock::claim_folder(dir, option);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string held_message(const fs::path& dir, pid_t holder) {
  return dir.string() + " is being written by another autoguide process (pid " + std::to_string(holder) +
         "); wait for it or choose another --outdir";
}

}  // namespace

TEST(OutputLock, SecondClaimIsRefusedNamingTheHolder) {
  const auto dir = fresh_dir("second");
  {
    OutputLock lock = OutputLock::claim_folder(dir.string());
    EXPECT_EQ(read_text(dir / ".autoguide.lock"), std::to_string(::getpid()) + "\n");
    EXPECT_EQ(refusal(dir.string()), held_message(dir, ::getpid()));
  }
  EXPECT_EQ(refusal(dir.string()), "");  // released
}

TEST(OutputLock, ReleaseRemovesTheLockFileAndAFolderItCreatedWhileEmpty) {
  const auto made = fresh_dir("made"), kept = fresh_dir("kept");
  { OutputLock lock = OutputLock::claim_folder(made.string()); }
  EXPECT_FALSE(fs::exists(made));
  {
    OutputLock lock = OutputLock::claim_folder(kept.string());
    std::ofstream(kept / "000000.png") << "x";
  }
  EXPECT_TRUE(fs::exists(kept / "000000.png"));
  EXPECT_FALSE(fs::exists(kept / ".autoguide.lock"));
  fs::remove_all(kept);
}

TEST(OutputLock, AStaleLockFileIsTakenOver) {
  const auto dir = fresh_dir("stale");
  fs::create_directories(dir);
  std::ofstream(dir / ".autoguide.lock") << "99999999\n";  // left by a killed run: the file, but no lock
  OutputLock lock = OutputLock::claim_folder(dir.string());
  EXPECT_EQ(read_text(dir / ".autoguide.lock"), std::to_string(::getpid()) + "\n");
  fs::remove_all(dir);
}

TEST(OutputLock, AKilledHolderNeverBlocksTheNextRun) {
  const auto dir = fresh_dir("killed");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    OutputLock lock = OutputLock::claim_folder(dir.string());
    (void)!::write(ready[1], "k", 1);
    for (;;) ::pause();
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_EQ(refusal(dir.string()), held_message(dir, child));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(fs::exists(dir / ".autoguide.lock"));  // SIGKILL left the file; the kernel dropped the lock
  EXPECT_EQ(refusal(dir.string()), "");
  fs::remove_all(dir);
}

TEST(OutputLock, ClaimsAreExclusiveUnderContention) {
  // Each process enters a section guarded only by the lock many times; an O_EXCL marker file catches any
  // moment where two are inside. Releases remove the lock file, so this also covers the unlink race.
  const auto dir = fresh_dir("race");
  fs::create_directories(dir);
  const std::string inside = (dir / "inside").string();
  std::vector<pid_t> children;
  for (int k = 0; k < 6; ++k) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int entered = 0; entered < 30;) {
        std::optional<OutputLock> lock;
        try {
          lock.emplace(OutputLock::claim_folder(dir.string()));
        } catch (const UsageError&) {
          ::usleep(100);
          continue;
        }
        const int fd = ::open(inside.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) ::_exit(1);
        ::usleep(200);
        ::close(fd);
        ::unlink(inside.c_str());
        ++entered;
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = -1;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "two processes held the lock at once";
  }
  fs::remove_all(dir);
}

TEST(OutputLock, FileClaimsLockBesideTheFile) {
  const auto dir = fresh_dir("file");
  fs::create_directories(dir);
  const std::string npy = (dir / "samples.npy").string();
  OutputLock lock = OutputLock::claim_file(npy, "--npy");
  EXPECT_EQ(lock.lock_path(), (dir / ".samples.npy.autoguide.lock").string());
  try {
    OutputLock second = OutputLock::claim_file(npy, "--npy");
    FAIL() << "a second claim on " << npy << " went through";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), npy + " is being written by another autoguide process (pid " +
                                         std::to_string(::getpid()) + "); wait for it or choose another --npy");
  }
  EXPECT_FALSE(fs::exists(npy));
  fs::remove_all(dir);
}
