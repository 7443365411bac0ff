// MPI behind SampleExchange (see mpi_exchange.h): MPI_COMM_WORLD, blocking point-to-point sends
// of each sample's histograms to rank 0 (sizes known on both sides from the sample), and a
// broadcast of the samples still to do. Compiled to a stub that returns null without MOA_WITH_MPI.
#include "profile/mpi_exchange.h"

#include <cstdlib>

#include "util/error.h"

#ifdef MOA_WITH_MPI
// The C API only: OpenMPI's deprecated C++ bindings do not compile warning-free.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>

#include "util/printable.h"
#endif

namespace moa {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

// OpenMPI's launcher sets OMPI_COMM_WORLD_* in every rank's environment.
int mpirun_ranks() { return env_int("OMPI_COMM_WORLD_SIZE", 0); }

}  // namespace

#ifdef MOA_WITH_MPI
namespace {

void check(int code, const char* what) {
  if (code != MPI_SUCCESS) fail("MPI: {} failed (code {})", what, code);
}

int checked_count(size_t n) {
  if (n > static_cast<size_t>(INT_MAX)) fail("MPI: message of {} values is too long", n);
  return static_cast<int>(n);
}

class OpenMpiExchange final : public MpiExchange {
 public:
  OpenMpiExchange() {
    check(MPI_Init(nullptr, nullptr), "MPI_Init");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~OpenMpiExchange() override { MPI_Finalize(); }
  OpenMpiExchange(const OpenMpiExchange&) = delete;
  OpenMpiExchange& operator=(const OpenMpiExchange&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return std::max(1, env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1)); }

  void broadcast(std::vector<int64_t>& values) override {
    auto count = static_cast<int64_t>(values.size());
    check(MPI_Bcast(&count, 1, MPI_INT64_T, 0, MPI_COMM_WORLD), "MPI_Bcast");
    values.resize(static_cast<size_t>(count));
    check(MPI_Bcast(values.data(), checked_count(values.size()), MPI_INT64_T, 0, MPI_COMM_WORLD),
          "MPI_Bcast");
  }
  void send_to_root(std::span<const double> values) override {
    check(
        MPI_Send(values.data(), checked_count(values.size()), MPI_DOUBLE, 0, kTag, MPI_COMM_WORLD),
        "MPI_Send");
  }
  void receive(int from, std::span<double> values) override {
    MPI_Status status;
    check(MPI_Recv(values.data(), checked_count(values.size()), MPI_DOUBLE, from, kTag,
                   MPI_COMM_WORLD, &status),
          "MPI_Recv");
    int got = 0;
    MPI_Get_count(&status, MPI_DOUBLE, &got);
    if (got != checked_count(values.size())) {
      fail("MPI: rank {} sent {} values, expected {}", from, got, values.size());
    }
  }
  [[noreturn]] void abort_with_error(const std::string& message) override {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", printable(message).c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }

 private:
  static constexpr int kTag = 13;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<MpiExchange> mpi_exchange_if_launched() {
  if (mpirun_ranks() == 0) return nullptr;
  return std::make_unique<OpenMpiExchange>();
}

#else

// Several copies of a build without MPI would each profile every sample into the same file.
std::unique_ptr<MpiExchange> mpi_exchange_if_launched() {
  if (mpirun_ranks() > 1) {
    fail(
        "mpirun: this moa was built without MPI (cmake -DMOA_MPI=ON with libopenmpi-dev); run "
        "it as one process");
  }
  return nullptr;
}

#endif

}  // namespace moa
