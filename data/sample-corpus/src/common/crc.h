/**
 * @file crc.h
 * @brief CRC-16/CCITT and CRC-32 helpers (Sentinel IXL common library).
 *
 * Used by:
 *   - config_loader.c  : configuration checksum exchanged between channels
 *                        (mismatch -> E05-B)
 *   - balise_decoder.c : LEU read-back frame check selected by
 *                        balise_telegram_crc_mode (mismatch -> E44-A)
 *
 * Byte order of transmitted check values: LEU read-back frames carry the
 * check value most significant byte first for both crc16 and crc32. Use
 * crc_read_be16()/crc_read_be32() to read trailers.
 */
#ifndef SIXL_CRC_H
#define SIXL_CRC_H

#include <stdint.h>
#include <stddef.h>

/**
 * CRC-16/CCITT, polynomial 0x1021, init 0xFFFF, no reflection, no final
 * XOR.
 * @param data  bytes to check
 * @param len   number of bytes (trailer excluded)
 * @return      16-bit check value
 */
uint16_t crc16_ccitt(const uint8_t *data, size_t len);

/**
 * Reflected CRC-32 core step (polynomial 0xEDB88320).
 * @param crc   running value; start with 0xFFFFFFFF
 * @param data  bytes to add
 * @param len   number of bytes
 * @return      running value (apply final XOR 0xFFFFFFFF when done)
 */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len);

/**
 * Complete CRC-32 of one buffer, init and final XOR applied.
 */
uint32_t crc32(const uint8_t *data, size_t len);

/** Read a 16-bit value stored most significant byte first. */
uint16_t crc_read_be16(const uint8_t *p);

/** Read a 32-bit value stored most significant byte first. */
uint32_t crc_read_be32(const uint8_t *p);

#endif /* SIXL_CRC_H */
