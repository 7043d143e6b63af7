// Fused residual add + ReLU kernels and their C ABI launchers. See residual_add_relu.h for the contract and
// residual_add_relu_grid.h for how a launch splits the range (shared with the host test that checks it).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "residual_add_relu.h"
#include "residual_add_relu_grid.h"
#include "residual_add_relu_math.h"

namespace {

constexpr int kBlock = 256;

__device__ __forceinline__ int64_t thread_index() {
    return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t thread_count() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

}  // namespace

// Entry points with an AOT-plugin-compatible signature: inputs, int32 scalars, output.
extern "C" __global__ void __launch_bounds__(kBlock)
    residual_add_relu_f32(const float* __restrict__ a, const float* __restrict__ b, int32_t n, float* __restrict__ y) {
    rd::elementwise(a, b, y, n, rd::OpF32{}, thread_index(), thread_count());
}

extern "C" __global__ void __launch_bounds__(kBlock) residual_add_relu_f16(const uint16_t* __restrict__ a,
                                                                          const uint16_t* __restrict__ b, int32_t n,
                                                                          uint16_t* __restrict__ y) {
    rd::elementwise(a, b, y, n, rd::OpF16{}, thread_index(), thread_count());
}

extern "C" __global__ void __launch_bounds__(kBlock)
    residual_add_relu_i8(const int8_t* __restrict__ a, const int8_t* __restrict__ b, int32_t n, int32_t sa_bits,
                         int32_t sb_bits, int32_t sy_bits, int8_t* __restrict__ y) {
    const rd::OpI8 op{__int_as_float(sa_bits), __int_as_float(sb_bits), __int_as_float(sy_bits)};
    rd::elementwise(a, b, y, n, op, thread_index(), thread_count());
}

namespace {

// Launches stay within the int32 element count of the entry points by splitting into chunks; a chunk is a
// multiple of 16 elements so every chunk keeps the alignment of the first one.
constexpr int64_t kChunk = int64_t{1} << 30;

int grid_for(int64_t n, int vec) {
    const int64_t vectors = (n + vec - 1) / vec;
    int64_t blocks = (vectors + kBlock - 1) / kBlock;
    if (blocks < 1) blocks = 1;
    return static_cast<int>(blocks);
}

int32_t float_bits(float f) {
    int32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    return bits;
}

template <typename Launch>
int launch_chunks(int64_t n, const void* a, const void* b, void* y, Launch launch) {
    if (n < 0 || (n > 0 && (a == nullptr || b == nullptr || y == nullptr))) return cudaErrorInvalidValue;
    for (int64_t start = 0; start < n; start += kChunk) {
        const int32_t count = static_cast<int32_t>(n - start < kChunk ? n - start : kChunk);
        launch(start, count);
        const cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
}

}  // namespace

extern "C" {

RD_API int rd_abi_version(void) { return 1; }

RD_API int rd_residual_add_relu_f32(const float* a, const float* b, float* y, int64_t n, void* stream) {
    return launch_chunks(n, a, b, y, [&](int64_t s, int32_t c) {
        residual_add_relu_f32<<<grid_for(c, 4), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(a + s, b + s, c,
                                                                                                 y + s);
    });
}

RD_API int rd_residual_add_relu_f16(const void* a, const void* b, void* y, int64_t n, void* stream) {
    const auto* ha = static_cast<const uint16_t*>(a);
    const auto* hb = static_cast<const uint16_t*>(b);
    auto* hy = static_cast<uint16_t*>(y);
    return launch_chunks(n, a, b, y, [&](int64_t s, int32_t c) {
        residual_add_relu_f16<<<grid_for(c, 8), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(ha + s, hb + s, c,
                                                                                                 hy + s);
    });
}

RD_API int rd_residual_add_relu_i8(const int8_t* a, const int8_t* b, int8_t* y, int64_t n, float sa, float sb,
                                   float sy, void* stream) {
    if (!std::isfinite(sa) || !std::isfinite(sb) || !std::isfinite(sy) || !(sy > 0.0f)) return cudaErrorInvalidValue;
    const int32_t ba = float_bits(sa), bb = float_bits(sb), by = float_bits(sy);
    return launch_chunks(n, a, b, y, [&](int64_t s, int32_t c) {
        residual_add_relu_i8<<<grid_for(c, 16), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(a + s, b + s, c, ba,
                                                                                                 bb, by, y + s);
    });
}

RD_API const char* rd_error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // extern "C"
