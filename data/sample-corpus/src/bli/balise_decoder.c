/**
 * @file balise_decoder.c
 * @brief LEU read-back frame check and packet decoding (Packet 44, Packet 5).
 *
 * Sentinel IXL 4.3.1. Codes raised here: E44-A, E44-B, E44-C, E44-D,
 * E45-A, E45-B, E46-A, W44-B (docs/errors-balise.md).
 */
#include <stdio.h>
#include <string.h>

#include "balise_decoder.h"
#include "config_loader.h"
#include "crc.h"
#include "diag_log.h"
#include "error_codes.h"

/* Packet identifiers the decoder knows; all except 5 and 44 are skipped. */
static const uint8_t KNOWN_PACKETS[] = { 0, 3, 5, 12, 21, 27, 41, 44, 65, 68, 72, 79, 137 };

static const char *const CRC_MODE_NAMES[] = { "off", "crc16", "crc32" };

static uint32_t br_get(bli_bitreader_t *br, unsigned n)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < n && br->pos < br->nbits; i++, br->pos++) {
        uint8_t bit = (br->data[br->pos >> 3] >> (7u - (br->pos & 7u))) & 1u;
        v = (v << 1) | bit;
    }
    return v;
}

static bool bli_packet_known(uint32_t id)
{
    for (size_t i = 0; i < sizeof KNOWN_PACKETS; i++)
        if (KNOWN_PACKETS[i] == id) return true;
    return false;
}

void bli_init(bli_leu_t *leu, const char *id, uint16_t nid_bg)
{
    memset(leu, 0, sizeof *leu);
    snprintf(leu->id, sizeof leu->id, "%s", id);
    leu->nid_bg = nid_bg;
}

/**
 * Verify the read-back frame check value.
 *
 * crc32: 4-byte trailer, read MSB first with crc_read_be32(). Computed over
 *        the whole body (SIXL-2071 computed over len-1 in 4.2.0).
 * crc16: 2-byte trailer. LEUs transmit it MSB first.
 *
 * KNOWN ISSUE SIXL-2288 (4.3.x): the crc16 trailer is assembled LSB first
 * below, so crc_rx is the byte-swapped value of what the LEU sent and every
 * frame fails with E44-A (log shows crc_rx and crc_calc byte-swapped).
 * Correct code: crc_rx = crc_read_be16(&frame[body]);
 * Workaround: use balise_telegram_crc_mode = crc32.
 */
bool bli_check_crc(bli_leu_t *leu, const uint8_t *frame, size_t len)
{
    const bli_crc_mode_t mode = cfg_get()->balise_telegram_crc_mode;
    uint32_t crc_rx = 0, crc_calc = 0;
    size_t body;

    switch (mode) {
    case BLI_CRC_OFF:
        return cfg_get()->sixl_test_mode;          /* only allowed in test mode */
    case BLI_CRC16:
        if (len < BLI_HDR_LEN + 2u) return false;
        body = len - 2u;
        crc_calc = crc16_ccitt(frame, body);
        crc_rx = (uint32_t)frame[body] | ((uint32_t)frame[body + 1u] << 8);   /* SIXL-2288 */
        break;
    case BLI_CRC32:
    default:
        if (len < BLI_HDR_LEN + 4u) return false;
        body = len - 4u;
        crc_calc = crc32(frame, body);
        crc_rx = crc_read_be32(&frame[body]);
        break;
    }
    if (crc_rx != crc_calc) {
        diag_log(DIAG_ERROR, "BLI", ERR_BLI_CRC, leu->id, __func__, "telegram CRC mismatch",
                 mode == BLI_CRC16 ? "mode=%s crc_rx=0x%04X crc_calc=0x%04X len=%u"
                                   : "mode=%s crc_rx=0x%08X crc_calc=0x%08X len=%u",
                 CRC_MODE_NAMES[mode], crc_rx, crc_calc, (unsigned)len);
        return false;
    }
    return true;
}

/**
 * Packet 44 (application data container). Reads the 9-bit application
 * identifier and checks it against bli_packet44_allowed_xuser.
 * The bit reader is positioned after the common packet header.
 */
static bli_p44_result_t bli_parse_packet44(bli_leu_t *leu, bli_bitreader_t *br, uint32_t l_packet)
{
    const sixl_config_t *c = cfg_get();
    size_t start = br->pos - BLI_PKT_HDR_BITS;

    if (l_packet < BLI_PKT_HDR_BITS + BLI_XUSER_BITS || start + l_packet > br->nbits) {
        diag_log(DIAG_ERROR, "BLI", ERR_BLI_P44_LENGTH, leu->id, __func__,
                 "Packet 44 length inconsistent", "l_packet=%u remaining=%u",
                 l_packet, (unsigned)(br->nbits - start));
        return P44_REJECT;
    }
    uint32_t xuser = br_get(br, BLI_XUSER_BITS);
    br->pos = start + l_packet;                        /* payload handled elsewhere */

    for (uint8_t i = 0; i < c->bli_packet44_allowed_count; i++) {
        if (c->bli_packet44_allowed_xuser[i] == xuser) return P44_ACCEPT;
    }
    if (c->bli_packet44_strict) {
        diag_log(DIAG_ERROR, "BLI", ERR_BLI_P44_XUSER, leu->id, __func__,
                 "Packet 44 application identifier not allowed", "nid_xuser=%u strict=true", xuser);
        return P44_REJECT;
    }
    diag_log(DIAG_WARN, "BLI", WRN_BLI_P44_IGNORED, leu->id, __func__,
             "Packet 44 ignored", "nid_xuser=%u strict=false", xuser);
    return P44_SKIP;
}

/**
 * Packet 5 (linking). Checks the first BLI_LINK_CHECK_DEPTH linked groups
 * against the topology within bli_linking_tolerance_m (E46-A).
 */
static bool bli_parse_packet5(bli_leu_t *leu, bli_bitreader_t *br, uint32_t q_dir, uint32_t l_packet)
{
    static const uint32_t SCALE_CM[] = { 10u, 100u, 1000u, 0u };
    size_t start = br->pos - BLI_PKT_HDR_BITS;
    uint32_t q_scale = br_get(br, 2);
    uint32_t dist_cm = 0;
    bool ok = true;

    for (unsigned k = 0; k < BLI_LINK_CHECK_DEPTH && ok; k++) {
        uint32_t d_link = br_get(br, 15);
        if (br_get(br, 1)) (void)br_get(br, 10);      /* new country: skip country id */
        uint32_t nid_bg = br_get(br, 14);
        (void)br_get(br, 1 + 2 + 6);                  /* orientation, reaction, accuracy */
        dist_cm += d_link * SCALE_CM[q_scale & 3u];

        uint32_t topo_m = 0, tol_m = cfg_get()->bli_linking_tolerance_m;
        uint32_t announced_m = dist_cm / 100u;
        if (!topo_linked_distance_m(leu->nid_bg, (uint16_t)nid_bg, (uint8_t)q_dir, &topo_m) ||
            (topo_m > announced_m ? topo_m - announced_m : announced_m - topo_m) > tol_m) {
            diag_log(DIAG_ERROR, "BLI", ERR_BLI_LINKING, leu->id, __func__,
                     "Packet 5 linked balise group not found",
                     "nid_bg=%u announced_m=%u topo_m=%u tol_m=%u", nid_bg, announced_m, topo_m, tol_m);
            ok = false;
        }
    }
    br->pos = start + l_packet;
    return ok;
}

bool bli_decode_telegram(bli_leu_t *leu, const uint8_t *frame, size_t len, uint32_t now_ms)
{
    leu->telegram_valid = false;
    if (len < BLI_HDR_LEN || len > BLI_MAX_FRAME || !bli_check_crc(leu, frame, len)) return false;

    if (frame[2] & BLI_STATUS_DEFAULT_TLG) {
        diag_log(DIAG_ERROR, "BLI", ERR_BLI_LEU_DEFAULT, leu->id, __func__,
                 "LEU sending its default telegram", NULL);
        return false;
    }
    bli_bitreader_t br = { &frame[BLI_HDR_LEN], (size_t)frame[3] * 8u, 0 };

    while (br.pos + 8u <= br.nbits) {
        uint32_t id = br_get(&br, 8);
        if (id == BLI_PKT_END) {
            leu->telegram_valid = true;
            leu->last_valid_ms = now_ms;
            leu->timeout_reported = false;
            return true;
        }
        uint32_t q_dir = br_get(&br, 2);
        uint32_t l_packet = br_get(&br, 13);
        if (!bli_packet_known(id) || l_packet < BLI_PKT_HDR_BITS) break;

        if (id == BLI_PKT_APPDATA) {
            if (bli_parse_packet44(leu, &br, l_packet) == P44_REJECT) return false;
        } else if (id == BLI_PKT_LINKING) {
            if (!bli_parse_packet5(leu, &br, q_dir, l_packet)) return false;
        } else {
            br.pos += l_packet - BLI_PKT_HDR_BITS;    /* known but not evaluated */
        }
    }
    diag_log(DIAG_ERROR, "BLI", ERR_BLI_UNKNOWN_PACKET, leu->id, __func__,
             "unknown packet or missing end marker", "bit_pos=%u nbits=%u",
             (unsigned)br.pos, (unsigned)br.nbits);
    return false;
}

void bli_check_leu_timeout(bli_leu_t *leu, uint32_t now_ms)
{
    const uint32_t limit = cfg_get()->leu_update_timeout_ms;
    if (!leu->timeout_reported && now_ms - leu->last_valid_ms > limit) {
        leu->timeout_reported = true;
        leu->telegram_valid = false;
        diag_log(DIAG_ERROR, "BLI", ERR_BLI_LEU_TIMEOUT, leu->id, __func__,
                 "LEU telegram not updated in time", "timeout_ms=%u", limit);
    }
}
