// cryptolib's AES without TLS: axtls's aes.c (vendored, unchanged) built
// here, with the two block functions that modcryptolib calls for ECB made
// visible (aes.c keeps them static; its TLS code is not built).
#if MICROPY_SSL_AXTLS
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wfloat-conversion"
// aes.c needs only integer types and two linkage macros from axtls's
// os_port.h, whose Linux half (sockets, netdb.h) a board has not: skip it.
#define HEADER_OS_PORT_H
#include "lib/axtls/crypto/os_int.h"
#define STDCALL
#define EXP_FUNC
#define ntohl(x) __builtin_bswap32(x)   // Cortex-M: little-endian
#define htonl(x) __builtin_bswap32(x)
#define AES_encrypt umbra_axtls_aes_encrypt
#define AES_decrypt umbra_axtls_aes_decrypt
#include "lib/axtls/crypto/aes.c"
#undef AES_encrypt
#undef AES_decrypt

void AES_encrypt(const AES_CTX *ctx, uint32_t *data) {
    umbra_axtls_aes_encrypt(ctx, data);
}

void AES_decrypt(const AES_CTX *ctx, uint32_t *data) {
    umbra_axtls_aes_decrypt(ctx, data);
}
#endif
