// Ground truth for the summation order of the reference's Eigen reductions.
//
// Reads cases from stdin and prints, for each, the results of the Eigen expressions the
// reference's executor.h uses for its reduction ops, as hex doubles (%a), one line a case.
// Build it like the reference was built (g++ -O2 without -march, i.e. SSE2, Eigen 3.4):
//   g++ -O2 -std=c++17 -I/usr/include/eigen3 tools/eigen_order_check.cpp -o /tmp/eigen_check
// tools/eigen_order_fixture.py writes the inputs, runs it and stores tests/data/eigen_order.npz.
//
// Input, whitespace separated: F, then v (F), w (F), m (F*F, row-major), m2 (F*F), each
// number in any strtod format. Output order (see kOutputs in eigen_order_fixture.py):
//   norm(v) dot(v,w) mean(v) std(v) norm(m) mean(m) std(m)
//   rowwise mean (F), rowwise norm (F), colwise norm (F), row std (F), m*v (F), m*m2 (F*F)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <Eigen/Core>

template <int F>
using Vec = Eigen::Matrix<double, F, 1>;
template <int F>
using Mat = Eigen::Matrix<double, F, F, Eigen::RowMajor>;  // as the reference declares it

// A memory like the reference's: cells live in arrays, results are assigned into cells.
// alignas(16): the two-accumulator loop starts at the first 16-byte aligned entry, so an
// F x F matrix whose size is not a multiple of 16 bytes (odd F) is reduced in an order
// that depends on its address; the project assumes an aligned start (entry 0).
template <int F>
struct Cells {
  Vec<F> v[4];
  alignas(16) Mat<F> m0;
  alignas(16) Mat<F> m1;
  alignas(16) Mat<F> m2;
  double s[8];
};

static double ReadNumber() {
  std::string token;
  if (!(std::cin >> token)) std::exit(1);
  return std::strtod(token.c_str(), nullptr);
}

static void Print(double x) { std::printf(" %a", x); }

// noinline keeps each expression compiled the way a separate executor op function is.
template <int F>
__attribute__((noinline)) void Run(Cells<F>* c) {
  for (int k = 0; k < F; ++k) c->v[0](k) = ReadNumber();
  for (int k = 0; k < F; ++k) c->v[1](k) = ReadNumber();
  for (int r = 0; r < F; ++r)
    for (int k = 0; k < F; ++k) c->m0(r, k) = ReadNumber();
  for (int r = 0; r < F; ++r)
    for (int k = 0; k < F; ++k) c->m1(r, k) = ReadNumber();
  const Vec<F>& v = c->v[0];
  const Mat<F>& m = c->m0;
  c->s[0] = v.norm();
  c->s[1] = v.dot(c->v[1]);
  c->s[2] = v.mean();
  {
    const double mean = v.mean();
    c->s[3] = std::sqrt(v.dot(v) / static_cast<double>(F) - mean * mean);
  }
  c->s[4] = m.norm();
  c->s[5] = m.mean();
  {
    const double mean = m.mean();
    c->s[6] = std::sqrt((m.array() * m.array()).sum() / static_cast<double>(F * F) -
                        mean * mean);
  }
  for (int i = 0; i < 7; ++i) Print(c->s[i]);
  c->v[2] = m.rowwise().mean();
  for (int k = 0; k < F; ++k) Print(c->v[2](k));
  c->v[2] = m.rowwise().norm();
  for (int k = 0; k < F; ++k) Print(c->v[2](k));
  c->v[2] = m.colwise().norm();
  for (int k = 0; k < F; ++k) Print(c->v[2](k));
  for (int r = 0; r < F; ++r) {
    const Vec<F>& row = m.row(r);  // a copy into a vector, as the reference's row std does
    const double mean = row.mean();
    c->v[2](r) = std::sqrt((row.array() * row.array()).sum() / static_cast<double>(F) -
                           mean * mean);
  }
  for (int k = 0; k < F; ++k) Print(c->v[2](k));
  c->v[3] = m * v;
  for (int k = 0; k < F; ++k) Print(c->v[3](k));
  c->m2 = m * c->m1;
  for (int r = 0; r < F; ++r)
    for (int k = 0; k < F; ++k) Print(c->m2(r, k));
  std::printf("\n");
}

template <int F>
void Dispatch(int f) {
  if (f == F) {
    static Cells<F> cells;
    Run<F>(&cells);
  } else if constexpr (F < 33) {
    Dispatch<F + 1>(f);
  } else {
    std::fprintf(stderr, "F must be in 1..33\n");
    std::exit(2);
  }
}

int main() {
  int f;
  while (std::cin >> f) Dispatch<1>(f);
  return 0;
}
