/**
 * @file crc.c
 * @brief CRC routines shared by the configuration loader and the BLI.
 *
 * crc16_ccitt(): polynomial 0x1021, initial value 0xFFFF, no reflection,
 *                no final XOR. Used for LEU read-back frames in
 *                balise_telegram_crc_mode = crc16.
 * crc32_update(): reflected polynomial 0xEDB88320 (normal form
 *                0x04C11DB7). Callers start with 0xFFFFFFFF and apply the
 *                final XOR 0xFFFFFFFF themselves; see crc32().
 *
 * These functions only compute check values. How the received check value
 * is read from a frame (byte order) is the caller's business; see
 * bli_check_crc() in src/bli/balise_decoder.c and known issue SIXL-2288.
 */
#include "crc.h"

/**
 * Compute CRC-16/CCITT (init 0xFFFF) over @p len bytes.
 * Bitwise implementation: the BLI processes at most a few hundred bytes
 * per 50 ms cycle, so a table is not needed.
 */
uint16_t crc16_ccitt(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (int b = 0; b < 8; b++) {
            if (crc & 0x8000u) {
                crc = (uint16_t)((crc << 1) ^ 0x1021u);
            } else {
                crc = (uint16_t)(crc << 1);
            }
        }
    }
    return crc;
}

/**
 * Continue a reflected CRC-32 over @p len bytes starting from @p crc.
 * Allows CRC computation over several non-contiguous buffers (the
 * configuration checksum covers the config struct and the override table).
 */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++) {
            uint32_t mask = (uint32_t)(-(int32_t)(crc & 1u));
            crc = (crc >> 1) ^ (0xEDB88320u & mask);
        }
    }
    return crc;
}

/**
 * Complete CRC-32 over one buffer (init 0xFFFFFFFF, final XOR 0xFFFFFFFF).
 * Release 4.2.0 called this with len - 1 from the BLI (SIXL-2071, fixed
 * in 4.2.1); the function itself was never wrong.
 */
uint32_t crc32(const uint8_t *data, size_t len)
{
    return crc32_update(0xFFFFFFFFu, data, len) ^ 0xFFFFFFFFu;
}

/**
 * Read a big-endian (most significant byte first) 16-bit value.
 * Provided for frame trailers; note that bli_check_crc() in 4.3.1 does not
 * use it for the crc16 trailer (SIXL-2288).
 */
uint16_t crc_read_be16(const uint8_t *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

/** Read a big-endian (most significant byte first) 32-bit value. */
uint32_t crc_read_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8)  |  (uint32_t)p[3];
}
