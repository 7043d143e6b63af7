/* C ABI of libresnet_deploy_kernels.so: y = max(a + b, 0) over n contiguous elements (NCHW linear, any batch).
 *
 * Every launcher enqueues on `stream` (a cudaStream_t / CUstream; NULL = legacy default stream), does not
 * synchronise, and returns 0 or a cudaError_t code (rd_error_string() names it). Pointers may have any
 * element-aligned offset: 16-byte vector accesses are used where a, b and y share their offset modulo 16.
 *
 * The __global__ entry points (also shipped as PTX for TensorRT plugins) take (inputs..., int32 scalars...,
 * output) in that order, which is the order tensorrt.plugin's AOT implementations pass arguments in:
 *   residual_add_relu_f32(const float* a, const float* b, int32 n, float* y)
 *   residual_add_relu_f16(const uint16* a, const uint16* b, int32 n, uint16* y)
 *   residual_add_relu_i8(const int8* a, const int8* b, int32 n, int32 sa_bits, int32 sb_bits, int32 sy_bits,
 *                        int8* y)       (scales passed as the bit patterns of float32 values)
 */
#ifndef RESNET_DEPLOY_RESIDUAL_ADD_RELU_H
#define RESNET_DEPLOY_RESIDUAL_ADD_RELU_H

#include <stdint.h>

#if defined(_WIN32)
#define RD_API __declspec(dllexport)
#else
#define RD_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this ABI; bump when a signature changes. */
RD_API int rd_abi_version(void);

RD_API int rd_residual_add_relu_f32(const float* a, const float* b, float* y, int64_t n, void* stream);

/* a, b, y hold IEEE binary16 values. */
RD_API int rd_residual_add_relu_f16(const void* a, const void* b, void* y, int64_t n, void* stream);

/* y = saturate(rint(max(sa*a + sb*b, 0) / sy)) in float32 (ONNX QuantizeLinear semantics, zero points 0).
 * sa, sb must be finite, sy finite and > 0. */
RD_API int rd_residual_add_relu_i8(const int8_t* a, const int8_t* b, int8_t* y, int64_t n, float sa, float sb,
                                   float sy, void* stream);

/* Human-readable name of a code returned above. */
RD_API const char* rd_error_string(int code);

#ifdef __cplusplus
}
#endif

#endif
