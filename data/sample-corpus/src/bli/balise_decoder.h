/**
 * @file balise_decoder.h
 * @brief Balise / LEU interface (BLI): read-back frame validation and packet decoding.
 *
 * Read-back frame layout (Sentinel LEU diagnostic port, all multi-byte
 * values most significant byte first):
 *
 *   offset  size  content
 *   0       1     LEU number
 *   1       1     balise index within the LEU
 *   2       1     status flags (bit 0: LEU transmits its default telegram)
 *   3       1     N = user data length in bytes
 *   4       N     telegram user data (packet bit stream)
 *   4+N     2|4   frame check: CRC-16 (crc16) or CRC-32 (crc32), MSB first
 *
 * The frame check covers bytes 0 .. 4+N-1. It protects only the read-back
 * path, not the air gap. See docs/etcs-packet44-packet5.md.
 */
#ifndef SIXL_BALISE_DECODER_H
#define SIXL_BALISE_DECODER_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#define BLI_CYCLE_MS            50u
#define BLI_HDR_LEN             4u
#define BLI_MAX_FRAME           140u
#define BLI_STATUS_DEFAULT_TLG  0x01u
#define BLI_PKT_END             255u
#define BLI_PKT_LINKING         5u
#define BLI_PKT_APPDATA         44u
#define BLI_PKT_HDR_BITS        23u     /* id 8 + direction 2 + length 13 */
#define BLI_XUSER_BITS          9u
#define BLI_LINK_CHECK_DEPTH    1u      /* linked groups checked vs topology */

/** Per-LEU / balise group supervision data. */
typedef struct {
    char     id[16];             /* "LEU3/BG31"                            */
    uint16_t nid_bg;             /* identity of the group this LEU feeds   */
    uint32_t last_valid_ms;      /* last accepted frame                    */
    bool     timeout_reported;   /* E45-A latched until next valid frame   */
    bool     telegram_valid;     /* result of the last decode              */
} bli_leu_t;

/** Simple MSB-first bit reader over the user data. */
typedef struct {
    const uint8_t *data;
    size_t         nbits;
    size_t         pos;
} bli_bitreader_t;

typedef enum { P44_ACCEPT, P44_SKIP, P44_REJECT } bli_p44_result_t;

/**
 * Topology lookup supplied by the station data module: distance in metres
 * from group @p from_bg to group @p to_bg in direction @p q_dir.
 * Returns false if @p to_bg is not a neighbour in that direction.
 */
extern bool topo_linked_distance_m(uint16_t from_bg, uint16_t to_bg, uint8_t q_dir,
                                   uint32_t *distance_m);

void bli_init(bli_leu_t *leu, const char *id, uint16_t nid_bg);

/** Check the frame trailer against balise_telegram_crc_mode (E44-A). */
bool bli_check_crc(bli_leu_t *leu, const uint8_t *frame, size_t len);

/**
 * Validate and decode one read-back frame. Returns true if the telegram is
 * acceptable for the interlocking; false holds associated signals at stop.
 */
bool bli_decode_telegram(bli_leu_t *leu, const uint8_t *frame, size_t len, uint32_t now_ms);

/** Called every BLI cycle; raises E45-A after leu_update_timeout_ms. */
void bli_check_leu_timeout(bli_leu_t *leu, uint32_t now_ms);

#endif /* SIXL_BALISE_DECODER_H */
