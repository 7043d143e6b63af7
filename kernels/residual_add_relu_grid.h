// How one launch of the fused add + ReLU splits [0, n) among threads; a __host__ __device__ template so the host
// test program (host_grid_test.cpp) can run every simulated thread of a grid on the CPU and check the split.
//
// The op is memory bound (6 bytes moved per FP16 element), so the bulk of the tensor moves in 16-byte loads and
// stores, one vector per thread per grid-stride step. A head (until the pointers reach a 16-byte boundary) and a
// tail (fewer than one vector) are done element-wise; when a, b and y are misaligned relative to each other no
// common vector boundary exists and the whole range runs element-wise.
#pragma once

#include <vector_types.h>  // uint4 (host and device)

#include <cstdint>
#include <cstring>

#include "residual_add_relu_math.h"

namespace rd {

struct OpF32 {
    RD_HD float operator()(float a, float b) const { return add_relu_f32(a, b); }
};

struct OpF16 {
    RD_HD uint16_t operator()(uint16_t a, uint16_t b) const { return add_relu_f16_bits(a, b); }
};

struct OpI8 {
    float sa, sb, sy;
    RD_HD int8_t operator()(int8_t a, int8_t b) const { return add_relu_i8(a, b, sa, sb, sy); }
};

// Where the 16-byte vector part of [0, n) starts (head elements before it) and how many vectors it has.
struct Split {
    bool vectorised;  // false: a, b, y have no common 16-byte boundary, everything is element-wise
    int64_t head;
    int64_t n_vec;
};

template <typename T>
RD_HD Split split(const T* a, const T* b, const T* y, int64_t n) {
    constexpr int kVec = 16 / sizeof(T);
    const uintptr_t off_a = reinterpret_cast<uintptr_t>(a) & 15u;
    const uintptr_t off_b = reinterpret_cast<uintptr_t>(b) & 15u;
    const uintptr_t off_y = reinterpret_cast<uintptr_t>(y) & 15u;
    if (off_a != off_b || off_a != off_y || off_a % sizeof(T) != 0) return Split{false, n, 0};
    int64_t head = off_a == 0 ? 0 : static_cast<int64_t>((16u - off_a) / sizeof(T));
    if (head > n) head = n;
    return Split{true, head, (n - head) / kVec};
}

// The work of thread `tid` of `threads` over n elements.
template <typename T, typename Op>
RD_HD void elementwise(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, int64_t n, Op op,
                       int64_t tid, int64_t threads) {
    constexpr int kVec = 16 / sizeof(T);
    const Split s = split(a, b, y, n);
    for (int64_t i = tid; i < s.head; i += threads) y[i] = op(a[i], b[i]);

    const uint4* va = reinterpret_cast<const uint4*>(a + s.head);
    const uint4* vb = reinterpret_cast<const uint4*>(b + s.head);
    uint4* vy = reinterpret_cast<uint4*>(y + s.head);
    for (int64_t i = tid; i < s.n_vec; i += threads) {
        const uint4 ra = va[i];
        const uint4 rb = vb[i];
        T ea[kVec], eb[kVec], ey[kVec];
        memcpy(ea, &ra, 16);  // register-level reinterpretation; compiles to nothing
        memcpy(eb, &rb, 16);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
        for (int k = 0; k < kVec; ++k) ey[k] = op(ea[k], eb[k]);
        uint4 ry;
        memcpy(&ry, ey, 16);
        vy[i] = ry;
    }

    for (int64_t i = s.head + s.n_vec * kVec + tid; i < n; i += threads) y[i] = op(a[i], b[i]);
}

}  // namespace rd
