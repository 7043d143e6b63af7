// Host test program: applies the kernels' per-element arithmetic (residual_add_relu_math.h, compiled for the
// CPU) to raw little-endian arrays, so tests can compare it with numpy and ONNX Runtime without a GPU.
//
//   rd_host_ref f32 N A.bin B.bin Y.bin
//   rd_host_ref f16 N A.bin B.bin Y.bin                (binary16 bit patterns)
//   rd_host_ref i8  N A.bin B.bin Y.bin SA SB SY       (scales as C99 hex floats, e.g. 0x1.8p-4)
//
// Build with -ffp-contract=off so the host compiler cannot fuse sa*a + sb*b into an FMA.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "residual_add_relu_math.h"

namespace {

template <typename T>
bool read_array(const char* path, std::vector<T>& out, long n) {
    FILE* f = std::fopen(path, "rb");
    if (f == nullptr) return false;
    out.resize(static_cast<size_t>(n));
    const size_t got = std::fread(out.data(), sizeof(T), out.size(), f);
    const bool at_end = std::fgetc(f) == EOF;
    std::fclose(f);
    return got == out.size() && at_end;
}

template <typename T>
bool write_array(const char* path, const std::vector<T>& data) {
    FILE* f = std::fopen(path, "wb");
    if (f == nullptr) return false;
    const size_t put = std::fwrite(data.data(), sizeof(T), data.size(), f);
    return std::fclose(f) == 0 && put == data.size();
}

bool parse_float(const char* s, float& out) {
    char* end = nullptr;
    out = std::strtof(s, &end);
    return end != s && *end == '\0';
}

template <typename T, typename Op>
int run(long n, char** argv, Op op) {
    std::vector<T> a, b;
    if (!read_array(argv[3], a, n) || !read_array(argv[4], b, n)) {
        std::fprintf(stderr, "rd_host_ref: cannot read %ld elements from the input files\n", n);
        return 1;
    }
    std::vector<T> y(a.size());
    for (size_t i = 0; i < a.size(); ++i) y[i] = op(a[i], b[i]);
    if (!write_array(argv[5], y)) {
        std::fprintf(stderr, "rd_host_ref: cannot write %s\n", argv[5]);
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: rd_host_ref f32|f16|i8 N A.bin B.bin Y.bin [SA SB SY]\n");
        return 2;
    }
    char* end = nullptr;
    const long n = std::strtol(argv[2], &end, 10);
    if (end == argv[2] || *end != '\0' || n < 0) {
        std::fprintf(stderr, "rd_host_ref: bad element count %s\n", argv[2]);
        return 2;
    }
    const char* mode = argv[1];
    if (std::strcmp(mode, "f32") == 0) {
        return run<float>(n, argv, [](float a, float b) { return rd::add_relu_f32(a, b); });
    }
    if (std::strcmp(mode, "f16") == 0) {
        return run<uint16_t>(n, argv, [](uint16_t a, uint16_t b) { return rd::add_relu_f16_bits(a, b); });
    }
    if (std::strcmp(mode, "i8") == 0) {
        float sa = 0, sb = 0, sy = 0;
        if (argc != 9 || !parse_float(argv[6], sa) || !parse_float(argv[7], sb) || !parse_float(argv[8], sy)) {
            std::fprintf(stderr, "rd_host_ref: i8 needs three scales\n");
            return 2;
        }
        return run<int8_t>(n, argv, [=](int8_t a, int8_t b) { return rd::add_relu_i8(a, b, sa, sb, sy); });
    }
    std::fprintf(stderr, "rd_host_ref: unknown mode %s\n", mode);
    return 2;
}
