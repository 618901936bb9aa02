// Forced into extmod/modcryptolib.c only (board.mk): the prototypes of the
// AES block functions umbra_aes.c makes visible.
#include <stddef.h>
#include <stdint.h>
#include "lib/axtls/crypto/crypto.h"
void AES_encrypt(const AES_CTX *ctx, uint32_t *data);
void AES_decrypt(const AES_CTX *ctx, uint32_t *data);
