// The SampleExchange of processes started by mpirun (OpenMPI): `moa profile` under
// `mpirun -np K` splits its samples over the K ranks. MPI is optional at build time (CMake option
// MOA_MPI, which defines MOA_WITH_MPI): without it, or when this process was not launched by
// mpirun, there is no exchange and moa profiles in one process. Only this file's .cc sees mpi.h.
#pragma once

#include <memory>
#include <string>

#include "profile/profiler.h"

namespace moa {

class MpiExchange : public SampleExchange {
 public:
  // Ranks on this machine (to share its cores between them).
  virtual int local_size() const = 0;
  // Prints `message` as the one error line and ends every rank with exit code 1: a rank that
  // stopped must not leave the others waiting for its histograms.
  [[noreturn]] virtual void abort_with_error(const std::string& message) = 0;
};

// Starts MPI (finalised when the exchange is destroyed) when built with it and launched by
// mpirun; null otherwise.
std::unique_ptr<MpiExchange> mpi_exchange_if_launched();

}  // namespace moa
