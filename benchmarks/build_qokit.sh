#!/usr/bin/env bash
# Build QOKit's C statevector simulator (qokit 0.1.4 sdist) with optimisation, for
# benchmarks/qaoa_sim.py:  bash benchmarks/build_qokit.sh [DEST]  ->  DEST/libcsim.so
#
# Why not `pip install qokit`: the 0.1.4 wheel does not find its compiled simulator and
# silently falls back to pure Python (~90x slower at n=16); it also pins numpy 2.1.3, numba
# and qiskit 2.2.3, which would replace this environment's versions. The sdist ships the C
# sources without their headers or Makefile, so the three headers are declared here from the
# function definitions, and the library is compiled -O3 -march=native with OpenMP (QOKit's
# documented build compiles without optimisation).
set -euo pipefail
dest=${1:-${TMPDIR:-/tmp}/qokit-csim}
py=${PYTHON:-python}
mkdir -p "$dest"
cd "$dest"
[ -f qokit-0.1.4.tar.gz ] || "$py" -m pip download qokit==0.1.4 --no-deps --no-binary :all: -d .
tar xzf qokit-0.1.4.tar.gz
src=qokit-0.1.4/qokit/fur/c/csim/src
cat > "$src/diagonal.h" <<'H'
#include <stddef.h>
void apply_diagonal(double* sv_real, double* sv_imag, double theta, double* const diag, size_t n);
H
cat > "$src/fur.h" <<'H'
#include <stddef.h>
void furx_kernel(double* a_real, double* a_imag, const double a, const double b, const int block_idx, const int n_q, const int q_offset, const int state_mask);
void furx_all(double* a_real, double* a_imag, double theta, unsigned int n_qubits, size_t n_states);
void furxy(double* a_real, double* a_imag, double theta, unsigned int q1, unsigned int q2, size_t n_states);
void furxy_ring(double* a_real, double* a_imag, double theta, unsigned int n_qubits, size_t n_states);
void furxy_complete(double* a_real, double* a_imag, double theta, unsigned int n_qubits, size_t n_states);
H
cat > "$src/qaoa_fur.h" <<'H'
#include <stddef.h>
void apply_qaoa_furx(double* sv_real, double* sv_imag, double* const gammas, double* const betas, double* const hc_diag, unsigned int n_qubits, size_t n_states, size_t n_layers);
void apply_qaoa_furxy_ring(double* sv_real, double* sv_imag, double* const gammas, double* const betas, double* const hc_diag, unsigned int n_qubits, size_t n_states, size_t n_layers, size_t n_trotters);
void apply_qaoa_furxy_complete(double* sv_real, double* sv_imag, double* const gammas, double* const betas, double* const hc_diag, unsigned int n_qubits, size_t n_states, size_t n_layers, size_t n_trotters);
H
flags="-O3 -march=native -fopenmp -fPIC -shared"
gcc $flags -I"$src" "$src/diagonal.c" "$src/fur.c" "$src/qaoa_fur.c" -o libcsim.so -lm
echo "$flags" > libcsim.flags
echo "built $dest/libcsim.so ($flags)"
