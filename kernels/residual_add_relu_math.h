// Per-element arithmetic of the fused residual add + ReLU, shared by the CUDA kernels and the host test
// program (tests/test_kernels_arith.py), so the CPU test exercises the very code the GPU runs.
//
// Rounding is pinned down explicitly: on the device the _rn intrinsics stop nvcc from contracting
// sa*a + sb*b into an FMA (which would round once instead of three times and disagree with ONNX Runtime's
// DequantizeLinear -> Add -> Relu -> QuantizeLinear); on the host compile with -ffp-contract=off.
#pragma once

#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RD_HD __host__ __device__ __forceinline__
#else
#define RD_HD inline
#endif

namespace rd {

RD_HD float add_rn(float x, float y) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(x, y);
#else
    return x + y;
#endif
}

RD_HD float mul_rn(float x, float y) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(x, y);
#else
    return x * y;
#endif
}

RD_HD float div_rn(float x, float y) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(x, y);  // IEEE division even if someone builds with -prec-div=false
#else
    return x / y;
#endif
}

// ReLU that keeps NaN (like torch.relu) instead of flushing it to 0 as fmaxf(v, 0) would, and maps -0 to +0.
RD_HD float relu(float v) { return v > 0.0f ? v : (v != v ? v : 0.0f); }

RD_HD float add_relu_f32(float a, float b) { return relu(add_rn(a, b)); }

// FP16 in/out, math in FP32 and one rounding to FP16 at the end: the same as PyTorch's CUDA half add
// (which computes in float) followed by ReLU, which commutes with the final rounding.
RD_HD uint16_t add_relu_f16_bits(uint16_t a, uint16_t b) {
    const float v = add_relu_f32(__half2float(__ushort_as_half(a)), __half2float(__ushort_as_half(b)));
    return __half_as_ushort(__float2half_rn(v));
}

// INT8 in/out with per-tensor symmetric scales (zero points 0), exactly ONNX's
// DequantizeLinear(a, sa) + DequantizeLinear(b, sb) -> Relu -> QuantizeLinear(., sy):
// v = max(sa*a + sb*b, 0) in float32, q = saturate(rint(v / sy)) with round half to even.
RD_HD int8_t add_relu_i8(int8_t a, int8_t b, float sa, float sb, float sy) {
    const float v = relu(add_rn(mul_rn(static_cast<float>(a), sa), mul_rn(static_cast<float>(b), sb)));
    float q = rintf(div_rn(v, sy));  // rintf rounds half to even in the default rounding mode
    q = q < -128.0f ? -128.0f : q;
    q = q > 127.0f ? 127.0f : q;
    return static_cast<int8_t>(static_cast<int>(q));
}

}  // namespace rd
