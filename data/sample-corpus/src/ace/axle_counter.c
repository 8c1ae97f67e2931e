/**
 * @file axle_counter.c
 * @brief Axle counter evaluator: counting, disturbance handling, reset and sweep.
 *
 * Sentinel IXL 4.3.1. Codes raised here: E31-A, E31-B, E31-C, E33-A,
 * E33-B, W31-A, W31-D (docs/errors-axle-counter.md).
 */
#include <stdio.h>
#include <string.h>

#include "axle_counter.h"
#include "config_loader.h"
#include "diag_log.h"
#include "error_codes.h"

#define ACE_SUPPLY_WARN_MV 10800u

static const char *const MODE_NAMES[] = { "direct", "conditional", "preparatory" };

/** Put the section into DISTURBED, remembering whether it was balanced. */
static void ace_disturb(ace_section_t *s)
{
    if (s->state != ACE_DISTURBED) {
        s->balanced_at_disturbance = (s->count_in == s->count_out) && s->state != ACE_SWEEP_PENDING;
    }
    s->state = ACE_DISTURBED;
    s->sweep_entry_head = -1;
}

void ace_init(ace_section_t *s, const char *id, const char *const head_ids[], uint8_t head_count)
{
    const sixl_config_t *c = cfg_get();
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->reset_mode      = (ace_reset_mode_t)cfg_object_u32("ace_reset_mode", id, c->ace_reset_mode);
    s->min_sweep_axles = cfg_object_u32("ace_min_sweep_axles", id, c->ace_min_sweep_axles);
    s->head_count      = head_count > ACE_MAX_HEADS ? ACE_MAX_HEADS : head_count;
    for (uint8_t i = 0; i < s->head_count; i++) {
        snprintf(s->heads[i].id, sizeof s->heads[i].id, "%s", head_ids[i]);
        s->heads[i].comm_ok = true;
    }
    /* after power-up the counts are unknown; preparatory reset rules apply
     * also after a warm restart (SIXL-2166, fixed in 4.3.0) */
    s->state = ACE_DISTURBED;
    s->balanced_at_disturbance = false;
    s->sweep_entry_head = -1;
}

/**
 * Count one axle. During a sweep run the axle is also added to the sweep
 * counters; the sweep is evaluated by ace_check_sweep() once it completes.
 */
void ace_count_event(ace_section_t *s, uint8_t head, ace_dir_t dir, uint32_t now_ms)
{
    if (head >= s->head_count) return;
    s->heads[head].last_msg_ms = now_ms;
    s->heads[head].comm_ok = true;          /* section stays disturbed until reset */

    if (s->state == ACE_SWEEP_PENDING) {
        if (s->sweep_entry_head < 0 && dir == ACE_DIR_IN) {
            s->sweep_entry_head = (int8_t)head;
            s->sweep_start_ms = now_ms;
        }
        if (dir == ACE_DIR_IN) s->sweep_in++; else { s->sweep_out++; s->sweep_exit_head = (int8_t)head; }
        return;
    }
    if (dir == ACE_DIR_IN) {
        s->count_in++;
    } else if (s->count_out >= s->count_in) {
        diag_log(DIAG_ERROR, "ACE", ERR_ACE_NEGATIVE, s->id, __func__, "negative count",
                 "in=%u out=%u head=%s", s->count_in, s->count_out + 1u, s->heads[head].id);
        s->count_out++;
        ace_disturb(s);
        return;
    } else {
        s->count_out++;
    }
    if (s->state != ACE_DISTURBED) {
        s->state = (s->count_in == s->count_out) ? ACE_CLEAR : ACE_OCCUPIED;
    }
}

void ace_head_phase_event(ace_section_t *s, uint8_t head, uint32_t offset_us)
{
    uint32_t tol = cfg_get()->ace_head_phase_tolerance_us;
    if (head < s->head_count && offset_us > tol) {
        diag_log(DIAG_ERROR, "ACE", ERR_ACE_HEAD_PHASE, s->id, __func__,
                 "counting head phase fault", "head=%s offset_us=%u tol_us=%u",
                 s->heads[head].id, offset_us, tol);
        ace_disturb(s);
    }
}

void ace_head_restart(ace_section_t *s, uint8_t head)
{
    if (head >= s->head_count) return;
    diag_log(DIAG_ERROR, "ACE", ERR_ACE_MISMATCH, s->id, __func__, "section disturbed",
             "in=%u out=%u head=%s", s->count_in, s->count_out, s->heads[head].id);
    ace_disturb(s);
}

void ace_head_supply(ace_section_t *s, uint8_t head, uint32_t supply_mv)
{
    if (head >= s->head_count) return;
    ace_head_t *h = &s->heads[head];
    if (supply_mv < ACE_SUPPLY_WARN_MV && !h->supply_warned) {
        h->supply_warned = true;
        diag_log(DIAG_WARN, "ACE", WRN_ACE_HEAD_SUPPLY, s->id, __func__,
                 "counting head supply voltage low", "head=%s supply_mv=%u", h->id, supply_mv);
    } else if (supply_mv >= ACE_SUPPLY_WARN_MV) {
        h->supply_warned = false;
    }
}

/**
 * Decide whether a completed sweep run proves the section empty.
 *
 * Documented rule (docs/config-axle-counter.md): accept when axles in
 * equal axles out, the sweep left through a different head than it
 * entered, and the sweep had AT LEAST ace_min_sweep_axles axles.
 *
 * KNOWN ISSUE SIXL-2317 (4.3.0, 4.3.1): the axle-number comparison below
 * uses '>' instead of '>='. A sweep with exactly min_sweep_axles axles
 * (e.g. a four-axle locomotive with the default of 4) is rejected and the
 * section stays disturbed (E31-B). Field bulletin FB-2025-02.
 * Fix planned for 4.4.0.
 */
static void ace_check_sweep(ace_section_t *s)
{
    uint32_t sweep_axles = s->sweep_in;
    bool balanced    = (s->sweep_in == s->sweep_out);
    bool passed      = (s->sweep_exit_head != s->sweep_entry_head) || s->head_count == 1u;
    bool enough      = (sweep_axles > s->min_sweep_axles);            /* SIXL-2317 */

    if (balanced && passed && enough) {
        diag_log(DIAG_INFO, "ACE", CODE_NONE, s->id, __func__, "sweep accepted, section clear",
                 "sweep_axles=%u min_axles=%u", sweep_axles, s->min_sweep_axles);
        s->count_in = s->count_out = 0;
        s->state = ACE_CLEAR;
    } else {
        diag_log(DIAG_ERROR, "ACE", ERR_ACE_SWEEP_REJECTED, s->id, __func__, "sweep not accepted",
                 "sweep_in=%u sweep_out=%u sweep_axles=%u min_axles=%u mode=%s",
                 s->sweep_in, s->sweep_out, sweep_axles, s->min_sweep_axles,
                 MODE_NAMES[s->reset_mode]);
        s->state = ACE_DISTURBED;
    }
    s->sweep_in = s->sweep_out = 0;
    s->sweep_entry_head = s->sweep_exit_head = -1;
}

void ace_section_evaluate(ace_section_t *s, uint32_t now_ms)
{
    const uint32_t timeout = cfg_get()->ace_comm_timeout_ms;

    for (uint8_t i = 0; i < s->head_count; i++) {
        ace_head_t *h = &s->heads[i];
        if (h->comm_ok && now_ms - h->last_msg_ms > timeout) {
            h->comm_ok = false;
            diag_log(DIAG_ERROR, "ACE", ERR_ACE_HEAD_COMM, s->id, __func__,
                     "counting head communication lost", "head=%s timeout_ms=%u", h->id, timeout);
            ace_disturb(s);
        }
    }
    if (s->state == ACE_SWEEP_PENDING && s->sweep_entry_head >= 0) {
        bool complete = (s->sweep_in > 0u && s->sweep_in == s->sweep_out);
        bool expired  = (now_ms - s->sweep_start_ms > ACE_SWEEP_MAX_MS);
        if (complete || expired) {
            ace_check_sweep(s);
        }
    }
}

/**
 * Operator reset. Refused while any boundary head has no communication.
 *   direct      -> clear immediately
 *   conditional -> clear if balanced at disturbance, else sweep (W31-A)
 *   preparatory -> always sweep (W31-A)
 */
bool ace_request_reset(ace_section_t *s, uint32_t now_ms)
{
    (void)now_ms;
    for (uint8_t i = 0; i < s->head_count; i++) {
        if (!s->heads[i].comm_ok) {
            diag_log(DIAG_INFO, "ACE", CODE_NONE, s->id, __func__, "reset refused, head not available",
                     "head=%s", s->heads[i].id);
            return false;
        }
    }
    s->count_in = s->count_out = 0;
    if (s->reset_mode == ACE_RESET_DIRECT ||
        (s->reset_mode == ACE_RESET_CONDITIONAL && s->balanced_at_disturbance)) {
        s->state = ACE_CLEAR;
        diag_log(DIAG_INFO, "ACE", CODE_NONE, s->id, __func__, "reset accepted, section clear",
                 "mode=%s", MODE_NAMES[s->reset_mode]);
        return true;
    }
    s->state = ACE_SWEEP_PENDING;
    s->sweep_in = s->sweep_out = 0;
    s->sweep_entry_head = s->sweep_exit_head = -1;
    diag_log(DIAG_WARN, "ACE", WRN_ACE_SWEEP_PENDING, s->id, __func__,
             "reset accepted, sweep run required", "mode=%s", MODE_NAMES[s->reset_mode]);
    return true;
}

bool ace_is_occupied(const ace_section_t *s) { return s->state != ACE_CLEAR; }
