/**
 * @file track_circuit.h
 * @brief Track circuit module (TCM) interface.
 *
 * A section is OCCUPIED as soon as the receiver current drops below
 * tc_dropaway_threshold_ma, and CLEAR once the current has stayed above
 * tc_pickup_threshold_ma for tc_clear_delay_ms. Between the thresholds the
 * previous state is kept (hysteresis). See docs/config-track.md.
 */
#ifndef SIXL_TRACK_CIRCUIT_H
#define SIXL_TRACK_CIRCUIT_H

#include <stdint.h>
#include <stdbool.h>

#define TCM_CYCLE_MS          20u
#define TC_MAX_NEIGHBOURS     4u
#define TC_FLICKER_WINDOW_MS  60000u   /* tc_flicker_limit is per minute      */
#define TC_FLICKER_HISTORY    32u      /* >= max tc_flicker_limit + 2         */
#define TC_SHUNT_TIMEOUT_MS   3000u    /* expected entry not seen -> E14-B    */

typedef struct tc_section tc_section_t;

struct tc_section {
    char      id[8];                       /* "T104"                          */
    bool      occupied;
    bool      latched;                     /* latched occupied after E12-B    */
    bool      clear_pending;               /* above pickup, waiting for delay */
    uint32_t  clear_since_ms;
    uint32_t  last_rx_ma;

    /* resolved configuration (global keys + key@object overrides) */
    uint32_t  pickup_ma;                   /* tc_pickup_threshold_ma          */
    uint32_t  dropaway_ma;                 /* tc_dropaway_threshold_ma        */
    uint32_t  clear_delay_ms;              /* tc_clear_delay_ms               */
    uint32_t  max_rx_ma;                   /* tc_max_receiver_ma              */

    /* flicker supervision: time stamps of recent state changes */
    uint32_t  change_ms[TC_FLICKER_HISTORY];
    uint8_t   change_head;
    uint8_t   change_count;

    bool      margin_warned;               /* W12-A logged for this period    */

    /* topology and context provided by the interlocking core */
    tc_section_t *neighbours[TC_MAX_NEIGHBOURS];
    uint8_t   neighbour_count;
    bool      movement_expected;           /* route/shunt set towards section */
    uint32_t  entry_expected_since_ms;     /* 0 = no entry expected           */

    /* optional axle counter overlay */
    bool      has_ace_overlay;
    bool      ace_occupied;
    uint32_t  disagree_since_ms;           /* 0 = states agree                */
};

/** Initialise a section and resolve its thresholds. */
void tc_init(tc_section_t *s, const char *id);

/**
 * One TCM cycle.
 * @param rx_ma   measured receiver current
 * @param tx_ok   transmitter self-test result (false -> E14-A)
 * @param now_ms  monotonic time
 */
void tc_cycle(tc_section_t *s, uint32_t rx_ma, bool tx_ok, uint32_t now_ms);

/** Maintainer acknowledgement ("tcm ack T104") of a latched section. */
void tc_ack(tc_section_t *s);

/** Reported state as used by the interlocking (latched counts as occupied). */
bool tc_is_occupied(const tc_section_t *s);

#endif /* SIXL_TRACK_CIRCUIT_H */
