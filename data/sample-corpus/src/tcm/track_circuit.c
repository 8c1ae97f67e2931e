/**
 * @file track_circuit.c
 * @brief Track circuit evaluation: occupancy, flicker, margin and cross-checks.
 *
 * Sentinel IXL 4.3.1. Codes raised here: E12-A, E12-B, E12-C, E14-A,
 * E14-B, W12-A, W12-C (docs/errors-track.md).
 */
#include <stdio.h>
#include <string.h>

#include "track_circuit.h"
#include "config_loader.h"
#include "diag_log.h"
#include "error_codes.h"

void tc_init(tc_section_t *s, const char *id)
{
    const sixl_config_t *c = cfg_get();
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->occupied       = true;     /* safe state until proven clear */
    s->pickup_ma      = cfg_object_u32("tc_pickup_threshold_ma", id, c->tc_pickup_threshold_ma);
    s->dropaway_ma    = cfg_object_u32("tc_dropaway_threshold_ma", id, c->tc_dropaway_threshold_ma);
    s->clear_delay_ms = cfg_object_u32("tc_clear_delay_ms", id, c->tc_clear_delay_ms);
    s->max_rx_ma      = cfg_object_u32("tc_max_receiver_ma", id, c->tc_max_receiver_ma);
}

static bool tc_any_neighbour_occupied(const tc_section_t *s)
{
    for (uint8_t i = 0; i < s->neighbour_count; i++) {
        if (s->neighbours[i] != NULL && tc_is_occupied(s->neighbours[i])) return true;
    }
    return false;
}

/**
 * Record a state change and latch the section if it changed more than
 * tc_flicker_limit times within the last minute (E12-B).
 */
static void tc_check_flicker(tc_section_t *s, uint32_t now_ms)
{
    const uint32_t limit = cfg_get()->tc_flicker_limit;
    uint32_t recent = 0;

    s->change_ms[s->change_head] = now_ms;
    s->change_head = (uint8_t)((s->change_head + 1u) % TC_FLICKER_HISTORY);
    if (s->change_count < TC_FLICKER_HISTORY) s->change_count++;

    for (uint8_t i = 0; i < s->change_count; i++) {
        if (now_ms - s->change_ms[i] <= TC_FLICKER_WINDOW_MS) recent++;
    }
    if (recent > limit && !s->latched) {
        s->latched = true;
        diag_log(DIAG_ERROR, "TCM", ERR_TC_FLICKER, s->id, __func__,
                 "track circuit flicker, latched occupied",
                 "changes=%u limit=%u rx_ma=%u pickup_ma=%u dropaway_ma=%u",
                 recent, limit, s->last_rx_ma, s->pickup_ma, s->dropaway_ma);
    }
}

/**
 * Turn the receiver current into a section state.
 *
 * Drop-away is immediate. Pickup requires the current to stay above the
 * pickup threshold for clear_delay_ms. An occupancy that appears while no
 * neighbour is occupied and no movement is expected is reported as E12-A
 * (unexpected occupancy); the state change itself is the same.
 */
static void tc_evaluate_receiver(tc_section_t *s, uint32_t rx_ma, uint32_t now_ms)
{
    const uint32_t warn_pct = cfg_get()->tc_margin_warn_pct;

    if (rx_ma > s->max_rx_ma) {
        if (!s->occupied) tc_check_flicker(s, now_ms);
        s->occupied = true;
        s->clear_pending = false;
        diag_log(DIAG_ERROR, "TCM", ERR_TC_RX_HIGH, s->id, __func__,
                 "receiver current too high", "rx_ma=%u max_ma=%u", rx_ma, s->max_rx_ma);
        return;
    }

    if (rx_ma < s->dropaway_ma) {
        s->clear_pending = false;
        if (!s->occupied) {
            s->occupied = true;
            tc_check_flicker(s, now_ms);
            if (!tc_any_neighbour_occupied(s) && !s->movement_expected) {
                diag_log(DIAG_ERROR, "TCM", ERR_TC_UNEXPECTED_OCC, s->id, __func__,
                         "occupied without approach",
                         "rx_ma=%u pickup_ma=%u dropaway_ma=%u neighbours=clear",
                         rx_ma, s->pickup_ma, s->dropaway_ma);
            }
        }
        return;
    }

    if (rx_ma >= s->pickup_ma) {
        if (s->occupied) {
            if (!s->clear_pending) {
                s->clear_pending = true;
                s->clear_since_ms = now_ms;
            } else if (now_ms - s->clear_since_ms >= s->clear_delay_ms) {
                s->occupied = false;
                s->clear_pending = false;
                s->margin_warned = false;
                tc_check_flicker(s, now_ms);
            }
        } else {
            /* W12-A once per clear period (SIXL-2045, fixed in 4.2.1) */
            uint32_t warn_level = s->pickup_ma + (s->pickup_ma * warn_pct) / 100u;
            if (rx_ma < warn_level && !s->margin_warned) {
                s->margin_warned = true;
                diag_log(DIAG_WARN, "TCM", WRN_TC_MARGIN_LOW, s->id, __func__,
                         "receiver current margin low",
                         "rx_ma=%u pickup_ma=%u warn_ma=%u", rx_ma, s->pickup_ma, warn_level);
            }
        }
        return;
    }
    /* between drop-away and pickup: keep state, restart the clear delay */
    s->clear_pending = false;
}

/**
 * Detect loss of shunt (E14-B): an entry into the section is expected —
 * a neighbour is occupied with a movement set towards this section, or the
 * overlaid axle counter shows occupied — but the track circuit stays clear
 * for TC_SHUNT_TIMEOUT_MS.
 */
static void tc_check_shunt(tc_section_t *s, uint32_t now_ms)
{
    bool entry_expected = (s->movement_expected && tc_any_neighbour_occupied(s)) ||
                          (s->has_ace_overlay && s->ace_occupied);

    if (!entry_expected || s->occupied) {
        s->entry_expected_since_ms = 0;
        return;
    }
    if (s->entry_expected_since_ms == 0) {
        s->entry_expected_since_ms = now_ms;
    } else if (now_ms - s->entry_expected_since_ms > TC_SHUNT_TIMEOUT_MS) {
        diag_log(DIAG_ERROR, "TCM", ERR_TC_LOSS_OF_SHUNT, s->id, __func__,
                 "loss of shunt, train not detected", "rx_ma=%u ace_occupied=%d",
                 s->last_rx_ma, s->ace_occupied);
        s->occupied = true;              /* force safe state */
        s->entry_expected_since_ms = 0;
    }
}

/** Compare with the overlaid axle counter section (W12-C). */
static void tc_crosscheck_ace(tc_section_t *s, uint32_t now_ms)
{
    if (!s->has_ace_overlay || s->occupied == s->ace_occupied) {
        s->disagree_since_ms = 0;
        return;
    }
    if (s->disagree_since_ms == 0) {
        s->disagree_since_ms = now_ms;
    } else if (now_ms - s->disagree_since_ms > s->clear_delay_ms) {
        diag_log(DIAG_WARN, "TCM", WRN_TC_ACE_DISAGREE, s->id, __func__,
                 "track circuit and axle counter disagree", "tc=%s ace=%s",
                 s->occupied ? "OCC" : "CLR", s->ace_occupied ? "OCC" : "CLR");
        s->disagree_since_ms = now_ms;   /* repeat at most once per delay */
    }
}

void tc_cycle(tc_section_t *s, uint32_t rx_ma, bool tx_ok, uint32_t now_ms)
{
    s->last_rx_ma = rx_ma;
    if (!tx_ok) {
        diag_log(DIAG_ERROR, "TCM", ERR_TC_TX_FAULT, s->id, __func__,
                 "transmitter out of tolerance", NULL);
        s->occupied = true;
        return;
    }
    tc_evaluate_receiver(s, rx_ma, now_ms);
    tc_check_shunt(s, now_ms);
    tc_crosscheck_ace(s, now_ms);
}

void tc_ack(tc_section_t *s)
{
    diag_log(DIAG_INFO, "TCM", CODE_NONE, s->id, __func__, "flicker latch acknowledged", NULL);
    s->latched = false;
    s->change_count = 0;
}

bool tc_is_occupied(const tc_section_t *s) { return s->occupied || s->latched; }
