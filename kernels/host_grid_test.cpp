// Host check of the kernels' work split (residual_add_relu_grid.h): every simulated thread of a grid runs on the
// CPU, over odd sizes, aligned/misaligned/mutually-misaligned pointers and many grid sizes, with poisoned output
// and guard zones. Checks each element against the per-element op, that nothing outside y is written, and that
// the 16-byte vector path is taken whenever a, b and y share their offset modulo 16.
//
//   rd_host_grid_test      -> prints "ok <cases>" and exits 0, or describes the first failure and exits 1
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "residual_add_relu_grid.h"

namespace {

constexpr int kGuard = 48;  // bytes of poison either side of y
constexpr unsigned char kPoison = 0xA5;

uint32_t next_random(uint32_t& s) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}

// A 256-byte aligned buffer, like TensorRT and the CUDA allocator hand out.
struct Buffer {
    std::vector<unsigned char> raw;
    unsigned char* base;
    explicit Buffer(size_t bytes) : raw(bytes + 512) {
        const uintptr_t p = reinterpret_cast<uintptr_t>(raw.data());
        base = raw.data() + ((256 - p % 256) % 256);
    }
};

// Bitwise equality, except that any two NaNs match: which input's payload a NaN sum carries depends on operand
// order, which the compiler may swap (the GPU returns a canonical NaN anyway).
bool same(float x, float y) { return (x != x && y != y) || std::memcmp(&x, &y, sizeof(x)) == 0; }
bool same(uint16_t x, uint16_t y) {
    const auto nan = [](uint16_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x03FFu) != 0; };
    return (nan(x) && nan(y)) || x == y;
}
bool same(int8_t x, int8_t y) { return x == y; }

template <typename T, typename Op>
bool run_case(const char* name, int64_t n, const int (&offs)[3], int64_t threads, Op op, uint32_t& seed) {
    const size_t bytes = (static_cast<size_t>(n) + 32) * sizeof(T) + 2 * kGuard;
    Buffer ba(bytes), bb(bytes), by(bytes);
    for (size_t i = 0; i < bytes; ++i) {
        ba.base[i] = static_cast<unsigned char>(next_random(seed));
        bb.base[i] = static_cast<unsigned char>(next_random(seed));
    }
    std::memset(by.base, kPoison, bytes);
    const T* a = reinterpret_cast<const T*>(ba.base) + offs[0];
    const T* b = reinterpret_cast<const T*>(bb.base) + offs[1];
    T* y = reinterpret_cast<T*>(by.base + kGuard) + offs[2];

    const rd::Split s = rd::split(a, b, y, n);
    const bool same_offset = offs[0] % (16 / sizeof(T)) == offs[1] % (16 / sizeof(T)) &&
                             offs[0] % (16 / sizeof(T)) == offs[2] % (16 / sizeof(T));
    const int64_t vec = 16 / sizeof(T);
    const bool aligned = reinterpret_cast<uintptr_t>(a + s.head) % 16 == 0 &&
                         reinterpret_cast<uintptr_t>(b + s.head) % 16 == 0 &&
                         reinterpret_cast<uintptr_t>(y + s.head) % 16 == 0;
    const bool short_head = s.head < vec || s.head == n;
    if (s.vectorised != same_offset ||
        (s.vectorised && (n - s.head - s.n_vec * vec >= vec || !short_head || (s.n_vec > 0 && !aligned)))) {
        std::printf("FAIL %s n=%lld offsets=%d,%d,%d: split vectorised=%d head=%lld n_vec=%lld\n", name,
                    static_cast<long long>(n), offs[0], offs[1], offs[2], s.vectorised, static_cast<long long>(s.head),
                    static_cast<long long>(s.n_vec));
        return false;
    }

    for (int64_t tid = 0; tid < threads; ++tid) rd::elementwise(a, b, y, n, op, tid, threads);

    for (int64_t i = 0; i < n; ++i) {
        const T want = op(a[i], b[i]);
        if (!same(want, y[i])) {
            std::printf("FAIL %s n=%lld offsets=%d,%d,%d threads=%lld: element %lld wrong\n", name,
                        static_cast<long long>(n), offs[0], offs[1], offs[2], static_cast<long long>(threads),
                        static_cast<long long>(i));
            return false;
        }
    }
    const unsigned char* lo = by.base;
    const unsigned char* hi = reinterpret_cast<const unsigned char*>(y + n);
    const unsigned char* start = reinterpret_cast<const unsigned char*>(y);
    for (const unsigned char* p = lo; p < start; ++p) {
        if (*p != kPoison) {
            std::printf("FAIL %s n=%lld offsets=%d,%d,%d: wrote before y\n", name, static_cast<long long>(n), offs[0],
                        offs[1], offs[2]);
            return false;
        }
    }
    for (const unsigned char* p = hi; p < by.base + bytes; ++p) {
        if (*p != kPoison) {
            std::printf("FAIL %s n=%lld offsets=%d,%d,%d: wrote after y\n", name, static_cast<long long>(n), offs[0],
                        offs[1], offs[2]);
            return false;
        }
    }
    return true;
}

}  // namespace

int main() {
    const int64_t sizes[] = {0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 255, 257, 1023, 4097};
    const int offsets[][3] = {{0, 0, 0}, {1, 1, 1}, {2, 2, 2}, {3, 3, 3}, {7, 7, 7}, {15, 15, 15}, {4, 4, 4},
                              {1, 0, 0}, {0, 2, 1}, {5, 9, 13}, {8, 0, 8}, {16, 0, 32}};
    const int64_t grids[] = {1, 2, 3, 7, 32, 256, 1000};
    uint32_t seed = 12345;
    long cases = 0;
    for (const int64_t n : sizes) {
        for (const auto& offs : offsets) {
            for (const int64_t threads : grids) {
                const rd::OpI8 op8{0.02f, 0.031f, 0.047f};
                if (!run_case<float>("f32", n, offs, threads, rd::OpF32{}, seed) ||
                    !run_case<uint16_t>("f16", n, offs, threads, rd::OpF16{}, seed) ||
                    !run_case<int8_t>("i8", n, offs, threads, op8, seed)) {
                    return 1;
                }
                cases += 3;
            }
        }
    }
    std::printf("ok %ld\n", cases);
    return 0;
}
